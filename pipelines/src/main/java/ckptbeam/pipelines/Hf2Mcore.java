package ckptbeam.pipelines;

import ckptbeam.io.compute.Nf4;
import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.LayoutOptions;
import java.io.IOException;
import java.io.PrintStream;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * {@code ckptbeam hf2mcore}: a bf16 (or FP8; V4: FP8 + MXFP4) HF DeepSeek-V3-architecture or V4 checkpoint to
 * Megatron-core rank files, with the MindSpeed-LLM converter's flags. The flags become a {@link ConversionRequest}; everything that can be
 * checked without reading tensor bytes is checked before the pipeline starts; the tracker file is written last.
 */
public final class Hf2Mcore {
  private Hf2Mcore() {}

  static Args flags() {
    Args a = new Args()
        .value("load-dir").help("DIR", "The HF checkpoint folder (config.json, model.safetensors.index.json, shards; "
            + "bf16 or DeepSeek's FP8), local or gs://. Required.")
        .value("save-dir").help("DIR", "The output folder, local or gs://; must be empty unless --overwrite or "
            + "--resume. Required.");
    return Conversion.common(LayoutFlags.define(a, "target")
        .flag("qlora-nf4").help("Quantise the linear weights to NF4 (blocks of 64) after sharding.")
        .value("nf4-format").help("npu|bitsandbytes", "The NF4 encoding: npu is what MindSpeed's QLoRA loads "
            + "(bitsandbytes-npu-beta 0.45.3), bitsandbytes is upstream bitsandbytes 0.50 on the CPU.")
        .defaultValue("npu")
        .flag("dry-run").help("Print the plan (per rank file: HF layers, tensors, bytes) and write nothing."));
  }

  /** What the command line asks for: the conversion, whether to only print its plan, the Beam options. */
  static final class Request {
    ConversionRequest conversion;
    boolean dryRun;
    boolean quiet;
    PipelineOptions pipelineOptions;
  }

  static Request parse(String[] argv) {
    Args a = flags().parse(argv);
    Request r = new Request();
    r.conversion = request(a, Cli.absolute(a.require("load-dir")), Cli.absolute(a.require("save-dir")));
    r.dryRun = a.has("dry-run");
    r.quiet = a.has("quiet");
    r.pipelineOptions = Cli.pipelineOptions(a, "hf2mcore");
    return r;
  }

  /** The conversion the flags describe, between the given folders. */
  static ConversionRequest request(Args a, String loadDir, String saveDir) {
    LayoutOptions o = LayoutFlags.parse(a, "target");
    if (a.has("nf4-format") && !a.has("qlora-nf4")) {
      throw new IllegalArgumentException("--nf4-format goes with --qlora-nf4");
    }
    if (a.has("qlora-nf4")) {
      String f = a.has("nf4-format") ? a.get("nf4-format") : "npu";
      if (f.equals("npu")) {
        o = o.toBuilder().nf4(Nf4.Format.NPU).build();
      } else if (f.equals("bitsandbytes")) {
        o = o.toBuilder().nf4(Nf4.Format.BITSANDBYTES).build();
      } else {
        throw new IllegalArgumentException("--nf4-format must be \"npu\" (what MindSpeed's QLoRA loads) or "
            + "\"bitsandbytes\" (upstream bitsandbytes 0.50 on the CPU), got \"" + f + "\"");
      }
    }
    return ConversionRequest.hf2mcore(loadDir, saveDir, o).withOptions(Conversion.options(a))
        .withExistingOutput(Conversion.existingOutput(a));
  }

  /** Runs a conversion; returns the bytes of the output. */
  public static long run(String[] argv, PrintStream log) throws Exception {
    Request r = parse(argv);
    if (r.dryRun) {
      dryRun(r, log);
      return 0;
    }
    return Conversion.run(r.conversion, r.pipelineOptions, log, r.quiet);
  }

  /** Checks the request against the input and builds the pipeline; nothing is written yet. */
  static Built build(Request r, PrintStream log) throws IOException {
    return Conversion.build(r.conversion, r.pipelineOptions, log);
  }

  private static void dryRun(Request r, PrintStream log) throws IOException {
    CheckedConversion checked = Conversion.check(r.conversion, r.pipelineOptions, log);
    DryRun.print((Hf2McorePlan) checked.plan, checked.sources.files(), r.conversion.saveDir(), log);
  }
}
