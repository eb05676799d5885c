package ckptbeam.pipelines;

import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.HfShardsPlan;
import java.io.IOException;
import java.io.PrintStream;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * {@code ckptbeam mcore2hf}: Megatron-core rank files back to a HF safetensors checkpoint (docs/mapping.md §5), one file
 * per HF layer, LoRA merged on the way when asked; or, with {@code --save-lora-to-hf}, the LoRA factors alone in PEFT
 * form (§5.6). Every rank file of the layout must exist and hold exactly the layout's tensors; the index is written
 * last.
 */
public final class Mcore2Hf {
  private Mcore2Hf() {}

  static Args flags() {
    Args a = new Args()
        .value("load-dir").help("DIR", "The mcore checkpoint (its latest_checkpointed_iteration.txt names the "
            + "iteration; release works), local or gs://. Required.")
        .value("save-dir").help("DIR", "The HF output folder, local or gs://; must be empty unless --overwrite or "
            + "--resume. Required.")
        .value("model-config").help("FILE", "The HF config.json with the model dimensions.")
        .defaultValue("the one in --hf-cfg-dir, else the one hf2mcore copied into --load-dir, else (DeepSeek-V4) one "
            + "rebuilt from the rank files' args")
        .value("hf-cfg-dir").help("DIR", "MindSpeed's flag: an HF folder (the original model) whose config.json "
            + "gives the dimensions and whose config, tokenizer and modeling files the output gets (never its index).")
        .defaultValue("--load-dir's copies");
    return Conversion.common(loraFlags(LayoutFlags.define(a, "source"))
        .multi("lora-target-modules").help("M", "With --save-lora-to-hf: the mcore modules to export (linear_qkv, "
            + "linear_proj, linear_fc1, ...).")
        .flag("save-lora-to-hf").help("Export the LoRA factors alone, as a PEFT adapter, instead of merging.")
        .flag("dry-run").help("Print the plan (rank files read, HF files written with tensors and bytes) and write "
            + "nothing."));
  }

  /** What the command line asks for: the conversion and the Beam options. */
  static final class Request {
    final ConversionRequest conversion;
    final PipelineOptions pipelineOptions;
    final boolean quiet;
    final boolean dryRun;

    Request(ConversionRequest conversion, PipelineOptions pipelineOptions, Args a) {
      this.conversion = conversion;
      this.pipelineOptions = pipelineOptions;
      this.quiet = a.has("quiet");
      this.dryRun = a.has("dry-run");
    }
  }

  static Request parse(String[] argv) throws IOException {
    Args a = flags().parse(argv);
    ConversionRequest r = request(a, Cli.absolute(a.require("load-dir")), Cli.absolute(a.require("save-dir")));
    PipelineOptions options = Cli.pipelineOptions(a, "mcore2hf");
    FileSystems.setDefaultPipelineOptions(options); // the args are read before the job: gs:// must be known
    return new Request(CheckpointArgs.complete(a, r), options, a);
  }

  /** The conversion the flags describe, between the given folders. */
  static ConversionRequest request(Args a, String loadDir, String saveDir) {
    ConversionRequest.Lora lora = lora(a);
    ConversionRequest r;
    if (a.has("save-lora-to-hf")) {
      r = ConversionRequest.loraExport(loadDir, saveDir, LayoutFlags.parse(a, "source"), lora,
          a.list("lora-target-modules"));
    } else {
      r = ConversionRequest.mcore2hf(loadDir, saveDir, LayoutFlags.parse(a, "source"));
      if (lora != null) {
        r = r.withLora(lora);
      }
    }
    if (a.has("model-config")) {
      r = r.withModelConfig(Cli.absolute(a.get("model-config")));
    }
    if (a.has("hf-cfg-dir")) {
      r = r.withHfConfigDir(Cli.absolute(a.get("hf-cfg-dir")));
    }
    return r.withOptions(Conversion.options(a)).withExistingOutput(Conversion.existingOutput(a));
  }

  public static long run(String[] argv, PrintStream log) throws Exception {
    Request r = parse(argv);
    if (r.dryRun) {
      CheckedConversion checked = Conversion.check(r.conversion, r.pipelineOptions, log);
      DryRun.print((HfShardsPlan) checked.plan, r.conversion.saveDir(), log);
      return 0;
    }
    return Conversion.run(r.conversion, r.pipelineOptions, log, r.quiet);
  }

  /** Checks the request against the input and builds the pipeline; nothing is written yet. */
  static Built build(Request r, PrintStream log) throws IOException {
    return Conversion.build(r.conversion, r.pipelineOptions, log);
  }

  /** The LoRA merge flags (mcore input: mcore2hf, mcore2mcore), read by {@link #lora}. */
  static Args loraFlags(Args a) {
    return a.value("lora-load").help("DIR", "The LoRA weights are in this separate (LoRA-only) mcore checkpoint.")
        .value("lora-r").help("R", "LoRA rank: merge W + (alpha/r) B A into the base as it is read.")
        .value("lora-alpha").help("A", "LoRA alpha.");
  }

  static ConversionRequest.Lora lora(Args a) {
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
    return new ConversionRequest.Lora(a.intValue("lora-r", 0), alpha,
        a.has("lora-load") ? Cli.absolute(a.get("lora-load")) : null);
  }
}
