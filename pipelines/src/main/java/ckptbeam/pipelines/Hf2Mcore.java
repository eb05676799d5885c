package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.SafetensorsIndex;
import ckptbeam.io.Shape;
import ckptbeam.io.TensorLocation;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.RankFile;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.DequantizeFp8;
import ckptbeam.transforms.beam.ReadSafetensorsHeaders;
import ckptbeam.transforms.beam.ShardRef;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.KV;

/**
 * {@code ckptbeam hf2mcore}: a bf16 HF DeepSeek-V3-architecture checkpoint to Megatron-core rank files, with the
 * MindSpeed-LLM converter's flags. Everything that can be checked without reading tensor bytes is checked before
 * the pipeline starts; the tracker file is written last.
 */
public final class Hf2Mcore {
  /** Small files copied from the HF folder so that the reverse direction and training find them. */
  static final List<String> SIDE_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "configuration_deepseek.py",
      "modeling_deepseek.py");

  private Hf2Mcore() {}

  static Args flags() {
    return LayoutFlags.define(new Args().value("load-dir").value("save-dir"), "target")
        .flag("qlora-nf4")
        .value("nf4-format")
        .flag("dry-run")
        .flag("overwrite")
        .flag("resume");
  }

  /** What one conversion is asked to do, validated. */
  static final class Request {
    String loadDir;
    String saveDir;
    LayoutOptions layout;
    boolean dryRun;
    Conversion conversion;
    PipelineOptions pipelineOptions;
  }

  static Request parse(String[] argv) {
    Args a = flags().parse(argv);
    Request r = new Request();
    r.loadDir = Cli.absolute(a.require("load-dir"));
    r.saveDir = Cli.absolute(a.require("save-dir"));
    LayoutOptions o = LayoutFlags.parse(a, "target");
    if (a.has("nf4-format") && !a.has("qlora-nf4")) {
      throw new IllegalArgumentException("--nf4-format goes with --qlora-nf4");
    }
    if (a.has("qlora-nf4")) {
      String f = a.has("nf4-format") ? a.get("nf4-format") : "npu";
      if (f.equals("npu")) {
        o.nf4 = ckptbeam.io.Nf4.Format.NPU;
      } else if (f.equals("bitsandbytes")) {
        o.nf4 = ckptbeam.io.Nf4.Format.BITSANDBYTES;
      } else {
        throw new IllegalArgumentException("--nf4-format must be \"npu\" (what MindSpeed's QLoRA loads) or "
            + "\"bitsandbytes\" (upstream bitsandbytes 0.50 on the CPU), got \"" + f + "\"");
      }
    }
    r.layout = o;
    r.dryRun = a.has("dry-run");
    r.conversion = new Conversion("hf2mcore", a, r.loadDir, r.saveDir);
    r.pipelineOptions = Cli.pipelineOptions(a.beamArgs(), "hf2mcore");
    return r;
  }

  /** Runs a conversion and returns the files written. */
  public static long run(String[] argv, PrintStream log) throws Exception {
    Request r = parse(argv);
    long start = System.nanoTime();
    Built b = build(r, log);
    if (b.pipeline == null) {
      return 0;
    }
    Cli.run(b.pipeline);
    return Cli.report(log, b.saveDir, b.allFiles(), System.nanoTime() - start);
  }

  /** Checks the request against the input and builds the pipeline; nothing is written yet. */
  static Built build(Request r, PrintStream log) throws IOException {
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(r.pipelineOptions);
    if (!CheckpointFiles.isDirectory(r.loadDir)) {
      throw new IOException("--load-dir " + r.loadDir + ": no such directory");
    }
    ModelConfig cfg = Cli.readConfig(CheckpointFiles.resolve(r.loadDir, "config.json"));
    LayoutOptions layout = r.layout.resolve(cfg);
    Hf2McorePlan plan = new Hf2McorePlan(cfg, layout);
    SafetensorsIndex index = SafetensorsIndex.read(r.loadDir);

    // one pass over the plan: the HF tensors it reads, and the bytes it will write (bf16, as nearly every tensor is)
    Map<String, Shape> needed = new LinkedHashMap<>();
    long planned = 0;
    for (RankFile f : plan.rankFiles()) {
      Hf2McorePlan.RankPlan rank = plan.plan(f);
      needed.putAll(rank.sources);
      for (List<ckptbeam.io.AssembledTensor> chunk : rank.contents.values()) {
        for (ckptbeam.io.AssembledTensor t : chunk) {
          planned += t.shape().numel() * 2;
        }
      }
    }
    List<String> missing = new ArrayList<>();
    for (String name : needed.keySet()) {
      if (!index.weightMap().containsKey(name)) {
        missing.add(name);
      }
    }
    if (!missing.isEmpty()) {
      throw new IOException(CheckpointFiles.resolve(r.loadDir, SafetensorsIndex.FILE_NAME) + ": " + missing.size()
          + " tensor(s) the layout needs are not in the index, e.g. \"" + missing.get(0) + "\"");
    }
    List<ShardRef> shards = Conversion.shardRefs(r.loadDir, index);
    TreeSet<String> ignored = new TreeSet<>(index.weightMap().keySet());
    ignored.removeAll(needed.keySet());
    if (cfg.fp8) {
      // the block scales of the FP8 weights are used to dequantise them
      ignored.removeIf(n -> n.endsWith(DequantizeFp8.SCALE_SUFFIX)
          && needed.containsKey(n.substring(0, n.length() - DequantizeFp8.SCALE_SUFFIX.length())));
    }
    if (!ignored.isEmpty()) {
      log.println("note: " + ignored.size() + " input tensor(s) are not part of this layout and are not converted,"
          + " e.g. " + ignored.first() + Cli.mtpHint(cfg, layout));
    }
    if (r.dryRun) {
      DryRun.print(plan, shards, r.saveDir, log);
      return new Built(null, r.saveDir, List.of(), Hf2McorePlan.TRACKER);
    }
    Conversion conv = r.conversion;
    conv.identify(SafetensorsIndex.FILE_NAME, CheckpointFiles.resolve(r.loadDir, SafetensorsIndex.FILE_NAME))
        .identify("config.json", CheckpointFiles.resolve(r.loadDir, "config.json"));
    conv.checkSpace(planned);
    conv.prepareSaveDir(Hf2McorePlan.TRACKER);
    List<String> expected = plan.targets();
    Map<String, String> sideFiles = Conversion.sideFiles(r.loadDir);

    Pipeline p = Pipeline.create(r.pipelineOptions);
    PCollection<ShardRef> shardRefs = p.apply("Shards", Create.of(shards).withCoder(ShardRef.Coder.of()));
    PCollection<KV<String, TensorLocation>> locations = shardRefs.apply("ReadHeaders", ReadSafetensorsHeaders.create());
    if (cfg.fp8) {
      locations = locations.apply("DequantizeFp8", DequantizeFp8.withBlocks(cfg.fp8BlockRows, cfg.fp8BlockCols));
    }
    conv.write(p, locations, plan, CommitCheckpoint.tracker(r.saveDir, expected, sideFiles, Hf2McorePlan.ITERATION));
    return new Built(p, r.saveDir, expected, Hf2McorePlan.TRACKER);
  }
}
