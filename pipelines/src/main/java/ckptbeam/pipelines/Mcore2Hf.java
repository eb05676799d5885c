package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.McoreTracker;
import ckptbeam.io.PythonJson;
import ckptbeam.io.SafetensorsIndex;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.LoraExportPlan;
import ckptbeam.transforms.LoraOptions;
import ckptbeam.transforms.Mcore2HfPlan;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.LocateSources;
import ckptbeam.transforms.beam.ReadLoraTensors;
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
        .value("lora-load").value("lora-r").value("lora-alpha").multi("lora-target-modules")
        .flag("save-lora-to-hf")
        .flag("overwrite");
  }

  public static List<WrittenFile> run(String[] argv, PrintStream log) throws Exception {
    Args a = flags().parse(argv);
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
    if (a.has("save-lora-to-hf")) {
      if (lora == null || a.list("lora-target-modules").isEmpty()) {
        throw new IllegalArgumentException("--save-lora-to-hf needs --lora-r, --lora-alpha and --lora-target-modules");
      }
      Built b = buildExport(loadDir, saveDir, layout, a.get("model-config"), a.has("overwrite"), lora,
          a.list("lora-target-modules"), options);
      Cli.run(b.pipeline);
      List<String> written = new java.util.ArrayList<>(b.targets);
      written.add("adapter_config.json");
      written.add(SafetensorsIndex.FILE_NAME);
      return Cli.report(log, saveDir, written, System.nanoTime() - start);
    }
    Built b = build(loadDir, saveDir, layout, a.get("model-config"), a.has("overwrite"), lora, options, log);
    Cli.run(b.pipeline);
    List<String> written = new java.util.ArrayList<>(b.targets);
    written.add(SafetensorsIndex.FILE_NAME);
    return Cli.report(log, saveDir, written, System.nanoTime() - start);
  }

  static final class Built {
    final Pipeline pipeline;
    final List<String> targets;

    Built(Pipeline pipeline, List<String> targets) {
      this.pipeline = pipeline;
      this.targets = targets;
    }
  }

  static Built build(String loadDir, String saveDir, LayoutOptions layout, String modelConfig, boolean overwrite,
      LoraOptions lora, org.apache.beam.sdk.options.PipelineOptions options, PrintStream log) throws IOException {
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(options);
    if (!CheckpointFiles.isDirectory(loadDir)) {
      throw new IOException("--load-dir " + loadDir + ": no such directory");
    }
    String configPath = configPath(loadDir, modelConfig);
    ModelConfig cfg = Cli.readConfig(configPath);
    Hf2McorePlan forward = forwardPlan(cfg, layout);
    ModelConfig out = forward.config();
    LayoutOptions resolved = forward.options();
    String iterationDir = McoreTracker.iterationDir(loadDir);
    Mcore2HfPlan plan = new Mcore2HfPlan(forward, iterationDir);
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
    return new Built(p, plan.targets());
  }

  /** The layout's forward plan over the output's layer structure (layers 0 … R-1, §4.1) and the model config. */
  private static Hf2McorePlan forwardPlan(ModelConfig cfg, LayoutOptions layout) {
    int numLayers = layout.numLayers >= 0 ? layout.numLayers : cfg.hiddenLayers + layout.noopLayers.size();
    int real = numLayers - layout.noopLayers.size();
    int k = Math.min(layout.firstKDense >= 0 ? layout.firstKDense : cfg.firstKDenseReplace, Math.max(real, 0));
    ModelConfig out = cfg.withLayers(Math.max(real, 1), k, layout.mtpLayers);
    LayoutOptions o = layout.copy();
    o.numLayers = numLayers;
    o.firstKDense = k;
    return new Hf2McorePlan(out, o.resolve(out));
  }

  /** {@code --save-lora-to-hf}: PEFT adapter tensors and adapter_config.json (§5.6). */
  static Built buildExport(String loadDir, String saveDir, LayoutOptions layout, String modelConfig, boolean overwrite,
      LoraOptions lora, List<String> targetModules, org.apache.beam.sdk.options.PipelineOptions options)
      throws IOException {
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(options);
    String configPath = configPath(loadDir, modelConfig);
    ModelConfig cfg = Cli.readConfig(configPath);
    Hf2McorePlan forward = forwardPlan(cfg, layout);
    String from = lora.loraDir != null ? lora.loraDir : loadDir;
    String iterationDir = lora.loraDir != null ? lora.loraIterationDir : McoreTracker.iterationDir(loadDir);
    LoraExportPlan plan = new LoraExportPlan(forward, iterationDir, lora.rank, targetModules);
    Cli.prepareSaveDir(saveDir, overwrite, SafetensorsIndex.FILE_NAME);
    ObjectNode adapter = JSON.createObjectNode();
    adapter.putNull("auto_mapping");
    adapter.putNull("base_model_name_or_path");
    adapter.put("bias", "none");
    adapter.put("fan_in_fan_out", false);
    adapter.put("inference_mode", true);
    adapter.put("init_lora_weights", true);
    adapter.putNull("layers_pattern");
    adapter.putNull("layers_to_transform");
    if (lora.alpha == Math.rint(lora.alpha)) {
      adapter.put("lora_alpha", (long) lora.alpha);
    } else {
      adapter.put("lora_alpha", lora.alpha);
    }
    adapter.put("lora_dropout", 0.0);
    adapter.putArray("modules_to_save");
    adapter.put("peft_type", "LORA");
    adapter.put("r", lora.rank);
    adapter.putNull("revision");
    plan.hfTargetModules().forEach(adapter.putArray("target_modules")::add);
    adapter.put("task_type", "CAUSAL_LM");
    Map<String, byte[]> generated = Map.of("adapter_config.json", PythonJson.write(adapter, 2));

    Pipeline p = Pipeline.create(options);
    PCollectionTuple joined = PCollectionTuple
        .of(LocateSources.LOCATIONS.getId(), p.apply("RankFiles", Create.of(plan.rankFiles()))
            .apply("ReadLoraFactors", ReadLoraTensors.from(from)))
        .and(LocateSources.REQUESTS.getId(), p.apply("RequestSources", RequestSources.of(plan)));
    joined.apply("LocateSources", LocateSources.create())
        .apply("WriteShards", WriteTargets.of(plan, saveDir))
        .apply("Commit", new CommitCheckpoint(saveDir, plan.targets(), Map.of(), generated, SafetensorsIndex.FILE_NAME,
            written -> plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum())));
    return new Built(p, plan.targets());
  }

  private static String configPath(String loadDir, String modelConfig) throws IOException {
    String path = modelConfig != null ? Cli.absolute(modelConfig) : CheckpointFiles.resolve(loadDir, "config.json");
    if (modelConfig == null && !CheckpointFiles.exists(path)) {
      throw new IOException("no --model-config given and " + path + " does not exist (hf2mcore copies the HF "
          + "config.json there; pass --model-config FILE)");
    }
    return path;
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
