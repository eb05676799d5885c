package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.McoreTracker;
import ckptbeam.io.SafetensorsIndex;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.LoraOptions;
import ckptbeam.transforms.Mcore2HfPlan;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.LocateSources;
import ckptbeam.transforms.beam.ReadRankFiles;
import ckptbeam.transforms.beam.RequestSources;
import ckptbeam.transforms.beam.WriteTargets;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.PCollectionTuple;

/**
 * {@code ckptbeam mcore2hf}: Megatron-core rank files back to a HF safetensors checkpoint (mapping.md §5), one file
 * per HF layer. Every rank file of the layout must exist and hold exactly the layout's tensors; the index is written
 * last.
 */
public final class Mcore2Hf {
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  private Mcore2Hf() {}

  static Args flags() {
    return LayoutFlags.define(new Args().value("load-dir").value("save-dir").value("model-config"), "source")
        .value("lora-load").value("lora-r").value("lora-alpha").value("lora-target-modules")
        .flag("save-lora-to-hf")
        .flag("overwrite");
  }

  public static List<WrittenFile> run(String[] argv, PrintStream log) throws Exception {
    Args a = flags().parse(argv);
    for (String export : new String[] {"lora-target-modules", "save-lora-to-hf"}) {
      if (a.has(export)) {
        throw new IllegalArgumentException("--" + export + " (LoRA export) is not supported yet");
      }
    }
    String loadDir = Cli.absolute(a.require("load-dir"));
    LoraOptions lora = null;
    if (a.has("lora-r") || a.has("lora-alpha") || a.has("lora-load")) {
      if (!a.has("lora-r") || !a.has("lora-alpha")) {
        throw new IllegalArgumentException("merging LoRA weights needs both --lora-r and --lora-alpha");
      }
      double alpha;
      try {
        alpha = Double.parseDouble(a.get("lora-alpha"));
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException("--lora-alpha must be a number, got \"" + a.get("lora-alpha") + "\"");
      }
      String loraDir = a.has("lora-load") ? Cli.absolute(a.get("lora-load")) : null;
      lora = new LoraOptions(a.intValue("lora-r", 0), alpha, loraDir,
          loraDir == null ? null : McoreTracker.iterationDir(loraDir));
    }
    String saveDir = Cli.absolute(a.require("save-dir"));
    LayoutOptions layout = LayoutFlags.parse(a, "source");
    org.apache.beam.sdk.options.PipelineOptions options = Cli.pipelineOptions(a.beamArgs(), "mcore2hf");
    long start = System.nanoTime();
    Built b = build(loadDir, saveDir, layout, a.get("model-config"), a.has("overwrite"), lora, options, log);
    Cli.run(b.pipeline);
    List<String> written = new java.util.ArrayList<>(b.plan.targets());
    written.add(SafetensorsIndex.FILE_NAME);
    return Cli.report(log, saveDir, written, System.nanoTime() - start);
  }

  static final class Built {
    final Pipeline pipeline;
    final Mcore2HfPlan plan;

    Built(Pipeline pipeline, Mcore2HfPlan plan) {
      this.pipeline = pipeline;
      this.plan = plan;
    }
  }

  static Built build(String loadDir, String saveDir, LayoutOptions layout, String modelConfig, boolean overwrite,
      LoraOptions lora, org.apache.beam.sdk.options.PipelineOptions options, PrintStream log) throws IOException {
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(options);
    if (!CheckpointFiles.isDirectory(loadDir)) {
      throw new IOException("--load-dir " + loadDir + ": no such directory");
    }
    String configPath = modelConfig != null ? Cli.absolute(modelConfig) : CheckpointFiles.resolve(loadDir, "config.json");
    if (modelConfig == null && !CheckpointFiles.exists(configPath)) {
      throw new IOException("no --model-config given and " + configPath + " does not exist (hf2mcore copies the HF "
          + "config.json there; pass --model-config FILE)");
    }
    ModelConfig cfg = Cli.readConfig(configPath);
    // The output numbers its layers 0 … R-1, dense iff below k (§4.1): plan over that structure.
    int numLayers = layout.numLayers >= 0 ? layout.numLayers : cfg.hiddenLayers + layout.noopLayers.size();
    int real = numLayers - layout.noopLayers.size();
    int k = Math.min(layout.firstKDense >= 0 ? layout.firstKDense : cfg.firstKDenseReplace, Math.max(real, 0));
    ModelConfig out = cfg.withLayers(Math.max(real, 1), k, layout.mtpLayers);
    LayoutOptions o = layout.copy();
    o.numLayers = numLayers;
    o.firstKDense = k;
    LayoutOptions resolved = o.resolve(out);
    String iterationDir = McoreTracker.iterationDir(loadDir);
    Mcore2HfPlan plan = new Mcore2HfPlan(new Hf2McorePlan(out, resolved), iterationDir);
    for (String rank : plan.rankFiles()) {
      String path = CheckpointFiles.resolve(loadDir, rank);
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": rank file missing; the layout (--source-tensor/pipeline/expert-parallel-size "
            + resolved.tp + "/" + resolved.pp + "/" + resolved.ep + ") needs " + plan.rankFiles().size() + " of them");
      }
    }
    Cli.prepareSaveDir(saveDir, overwrite, SafetensorsIndex.FILE_NAME);

    Map<String, String> sideFiles = new LinkedHashMap<>();
    for (String name : Hf2Mcore.SIDE_FILES) {
      String path = CheckpointFiles.resolve(loadDir, name);
      if (!name.equals("config.json") && CheckpointFiles.exists(path)) {
        sideFiles.put(path, name);
      }
    }
    Map<String, byte[]> generated = Map.of("config.json", outputConfig(configPath, cfg, out));

    Pipeline p = Pipeline.create(options);
    PCollectionTuple joined = PCollectionTuple
        .of(LocateSources.LOCATIONS.getId(), p.apply("RankFiles", Create.of(plan.rankFiles()))
            .apply("ReadRankFiles", ReadRankFiles.of(plan, loadDir).withLora(lora)))
        .and(LocateSources.REQUESTS.getId(), p.apply("RequestSources", RequestSources.of(plan)));
    joined.apply("LocateSources", LocateSources.create())
        .apply("WriteShards", WriteTargets.of(plan, saveDir))
        .apply("Commit", new CommitCheckpoint(saveDir, plan.targets(), sideFiles, generated, SafetensorsIndex.FILE_NAME,
            new IndexMarker(plan)));
    return new Built(p, plan);
  }

  /** config.json for the output: the input's, with the layer structure the output actually has. */
  static byte[] outputConfig(String path, ModelConfig in, ModelConfig out) throws IOException {
    ObjectNode json = (ObjectNode) JSON.readTree(CheckpointFiles.readSmallFile(path, 16L << 20));
    if (in.hiddenLayers != out.hiddenLayers) {
      json.put("num_hidden_layers", out.hiddenLayers);
    }
    if (in.firstKDenseReplace != out.firstKDenseReplace) {
      json.put("first_k_dense_replace", out.firstKDenseReplace);
    }
    if (in.nextnPredictLayers != out.nextnPredictLayers) {
      json.put("num_nextn_predict_layers", out.nextnPredictLayers);
    }
    return in.hiddenLayers == out.hiddenLayers && in.firstKDenseReplace == out.firstKDenseReplace
        && in.nextnPredictLayers == out.nextnPredictLayers
        ? CheckpointFiles.readSmallFile(path, 16L << 20) : JSON.writeValueAsBytes(json);
  }

  /** The index, with the total size of what was written; it marks the output complete. */
  static final class IndexMarker implements CommitCheckpoint.Marker {
    private static final long serialVersionUID = 1L;
    private final Mcore2HfPlan plan;

    IndexMarker(Mcore2HfPlan plan) {
      this.plan = plan;
    }

    @Override
    public byte[] content(List<WrittenFile> written) {
      long total = 0;
      for (WrittenFile f : written) {
        total += f.tensorBytes;
      }
      return plan.indexJson(total);
    }
  }
}
