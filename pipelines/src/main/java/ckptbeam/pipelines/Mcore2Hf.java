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
import ckptbeam.transforms.beam.ReadLoraTensors;
import ckptbeam.transforms.beam.ReadRankFiles;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;

/**
 * {@code ckptbeam mcore2hf}: Megatron-core rank files back to a HF safetensors checkpoint (mapping.md §5), one file
 * per HF layer, LoRA merged on the way when asked; or, with {@code --save-lora-to-hf}, the LoRA factors alone in PEFT
 * form (§5.6). Every rank file of the layout must exist and hold exactly the layout's tensors; the index is written
 * last.
 */
public final class Mcore2Hf {
  private static final ObjectMapper JSON = new ObjectMapper();

  private Mcore2Hf() {}

  static Args flags() {
    return LayoutFlags.define(new Args().value("load-dir").value("save-dir").value("model-config"), "source")
        .value("lora-load").value("lora-r").value("lora-alpha").multi("lora-target-modules")
        .flag("save-lora-to-hf")
        .flag("overwrite")
        .flag("resume");
  }

  /** What one conversion is asked to do: the parsed flags and the Beam options. */
  static final class Request {
    final Args args;
    final PipelineOptions pipelineOptions;

    Request(Args args, PipelineOptions pipelineOptions) {
      this.args = args;
      this.pipelineOptions = pipelineOptions;
    }
  }

  static Request parse(String[] argv) {
    Args a = flags().parse(argv);
    return new Request(a, Cli.pipelineOptions(a.beamArgs(), "mcore2hf"));
  }

  public static long run(String[] argv, PrintStream log) throws Exception {
    long start = System.nanoTime();
    Built b = build(parse(argv));
    Cli.run(b.pipeline);
    return Cli.report(log, b.saveDir, b.allFiles(), System.nanoTime() - start);
  }

  /** Checks the request against the input and builds the pipeline; nothing but the save dir's marker is touched. */
  static Built build(Request r) throws IOException {
    Args a = r.args;
    String loadDir = Cli.absolute(a.require("load-dir"));
    String saveDir = Cli.absolute(a.require("save-dir"));
    LoraOptions lora = loraOptions(a);
    LayoutOptions layout = LayoutFlags.parse(a, "source");
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(r.pipelineOptions);
    if (!CheckpointFiles.isDirectory(loadDir)) {
      throw new IOException("--load-dir " + loadDir + ": no such directory");
    }
    String configPath = configPath(loadDir, a.get("model-config"));
    Hf2McorePlan forward = forwardPlan(Cli.readConfig(configPath), layout);
    Conversion conv = new Conversion("mcore2hf", a, loadDir, saveDir)
        .identify(McoreTracker.FILE_NAME, CheckpointFiles.resolve(loadDir, McoreTracker.FILE_NAME))
        .identify("config.json", configPath);
    if (lora != null && lora.loraDir != null) {
      conv.identify("lora/" + McoreTracker.FILE_NAME, CheckpointFiles.resolve(lora.loraDir, McoreTracker.FILE_NAME));
    }
    Pipeline p = Pipeline.create(r.pipelineOptions);
    List<String> targets;
    if (a.has("save-lora-to-hf")) {
      if (lora == null || a.list("lora-target-modules").isEmpty()) {
        throw new IllegalArgumentException("--save-lora-to-hf needs --lora-r, --lora-alpha and --lora-target-modules");
      }
      targets = export(p, conv, forward, lora, a.list("lora-target-modules"));
      targets = Conversion.withExtras(targets, "adapter_config.json");
    } else {
      targets = convert(p, conv, forward, configPath, lora);
      targets = Conversion.withExtras(targets, "config.json");
    }
    return new Built(p, saveDir, targets, SafetensorsIndex.FILE_NAME);
  }

  private static LoraOptions loraOptions(Args a) throws IOException {
    if (!a.has("lora-r") && !a.has("lora-alpha") && !a.has("lora-load")) {
      return null;
    }
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
    return new LoraOptions(a.intValue("lora-r", 0), alpha, loraDir,
        loraDir == null ? null : McoreTracker.iterationDir(loraDir));
  }

  /** The conversion proper: rank files → HF shards. Returns the data files. */
  private static List<String> convert(Pipeline p, Conversion conv, Hf2McorePlan forward, String configPath,
      LoraOptions lora) throws IOException {
    Mcore2HfPlan plan = new Mcore2HfPlan(forward, McoreTracker.iterationDir(conv.loadDir));
    for (String rank : plan.rankFiles()) {
      String path = CheckpointFiles.resolve(conv.loadDir, rank);
      if (!CheckpointFiles.exists(path)) {
        LayoutOptions o = forward.options();
        throw new IOException(path + ": rank file missing; the layout (--source-tensor/pipeline/expert-parallel-size "
            + o.tp + "/" + o.pp + "/" + o.ep + ") needs " + plan.rankFiles().size() + " of them");
      }
    }
    conv.prepareSaveDir(SafetensorsIndex.FILE_NAME);
    ModelConfig in = Cli.readConfig(configPath);
    Map<String, byte[]> generated = Map.of("config.json", outputConfig(configPath, in, forward.config()));
    conv.write(p, p.apply("RankFiles", Create.of(plan.rankFiles()))
            .apply("ReadRankFiles", ReadRankFiles.of(plan, conv.loadDir).withLora(lora)),
        plan, new CommitCheckpoint(conv.saveDir, plan.targets(), Conversion.sideFiles(conv.loadDir, "config.json"),
            generated, SafetensorsIndex.FILE_NAME, new IndexMarker(plan)));
    return plan.targets();
  }

  /** {@code --save-lora-to-hf}: PEFT adapter tensors and adapter_config.json (§5.6). Returns the data files. */
  private static List<String> export(Pipeline p, Conversion conv, Hf2McorePlan forward, LoraOptions lora,
      List<String> modules) throws IOException {
    String from = lora.loraDir != null ? lora.loraDir : conv.loadDir;
    String iterationDir = lora.loraDir != null ? lora.loraIterationDir : McoreTracker.iterationDir(conv.loadDir);
    LoraExportPlan plan = new LoraExportPlan(forward, iterationDir, lora.rank, modules);
    conv.prepareSaveDir(SafetensorsIndex.FILE_NAME);
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
    conv.write(p, p.apply("RankFiles", Create.of(plan.rankFiles())).apply("ReadLoraFactors", ReadLoraTensors.from(from)),
        plan, new CommitCheckpoint(conv.saveDir, plan.targets(), Map.of(),
            Map.of("adapter_config.json", PythonJson.write(adapter, 2)), SafetensorsIndex.FILE_NAME,
            written -> plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum())));
    return plan.targets();
  }

  /** The layout's forward plan over the output's layer structure (layers 0 … R-1, §4.1). */
  static Hf2McorePlan forwardPlan(ModelConfig cfg, LayoutOptions layout) {
    int numLayers = layout.numLayers >= 0 ? layout.numLayers : cfg.hiddenLayers + layout.noopLayers.size();
    int real = numLayers - layout.noopLayers.size();
    int k = Math.min(layout.firstKDense >= 0 ? layout.firstKDense : cfg.firstKDenseReplace, Math.max(real, 0));
    ModelConfig out = cfg.withLayers(Math.max(real, 1), k, layout.mtpLayers);
    LayoutOptions o = layout.copy();
    o.numLayers = numLayers;
    o.firstKDense = k;
    return new Hf2McorePlan(out, o.resolve(out));
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
    byte[] original = CheckpointFiles.readSmallFile(path, 16L << 20);
    if (in.hiddenLayers == out.hiddenLayers && in.firstKDenseReplace == out.firstKDenseReplace
        && in.nextnPredictLayers == out.nextnPredictLayers) {
      return original;
    }
    ObjectNode json = (ObjectNode) JSON.readTree(original);
    json.put("num_hidden_layers", out.hiddenLayers);
    json.put("first_k_dense_replace", out.firstKDenseReplace);
    json.put("num_nextn_predict_layers", out.nextnPredictLayers);
    return PythonJson.write(json, 2);
  }

  /** The index, with the total size of what was written; it marks the output complete. */
  static final class IndexMarker implements CommitCheckpoint.Marker {
    private static final long serialVersionUID = 1L;
    private final Mcore2HfPlan plan;

    IndexMarker(Mcore2HfPlan plan) {
      this.plan = plan;
    }

    @Override
    public byte[] content(List<ckptbeam.transforms.beam.WrittenFile> written) {
      return plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum());
    }
  }
}
