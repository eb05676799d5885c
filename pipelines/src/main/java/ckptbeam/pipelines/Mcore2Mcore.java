package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreInputConfig;
import ckptbeam.transforms.Mcore2McorePlan;
import java.io.PrintStream;
import java.util.List;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * {@code ckptbeam mcore2mcore}: a Megatron-core checkpoint rewritten in another layout in one pass (each target
 * tensor read directly from the source rank files; the HF form is never written), byte for byte what mcore2hf then
 * hf2mcore would write; LoRA merged on the way when asked.
 */
final class Mcore2Mcore {
  private Mcore2Mcore() {}

  static Args flags() {
    Args a = new Args()
        .value("load-dir").help("DIR", "The mcore checkpoint (its latest_checkpointed_iteration.txt names the "
            + "iteration), local or gs://. Required.")
        .value("save-dir").help("DIR", "The output folder, local or gs://; must be empty unless --overwrite or "
            + "--resume. Required.")
        .value("model-config").help("FILE", "The HF config.json with the model dimensions.")
        .defaultValue("the one in --load-dir");
    return Conversion.common(Mcore2Hf.loraFlags(LayoutFlags.defineBoth(a))
        .flag("dry-run").help("Print the plan (per target rank file: HF layers, tensors, bytes) and write nothing."));
  }

  static long run(String[] argv, PrintStream log) throws Exception {
    Args a = flags().parse(argv);
    LayoutFlags.refuseUnsided(a);
    String loadDir = Cli.absolute(a.require("load-dir"));
    PipelineOptions options = Cli.pipelineOptions(a, "mcore2mcore");
    FileSystems.setDefaultPipelineOptions(options); // the args are read before the job: gs:// must be known
    // a DeepSeek-V4 checkpoint says its layout in its args; the flags given must agree with them
    LayoutOptions source = CheckpointArgs.fill(a, LayoutFlags.parse(a, "source", "source-"), loadDir,
        McoreInputConfig.of(a.has("model-config") ? Cli.absolute(a.get("model-config"))
            : CheckpointFiles.resolve(loadDir, "config.json"), a.has("model-config"), loadDir), "source", "source-");
    LayoutOptions target = LayoutFlags.parse(a, "target", "target-").toBuilder()
        .mtpLayers(a.has("mtp-num-layers") ? a.intValue("mtp-num-layers", 0) : source.mtpLayers())
        .v4Base(source.v4Base() || a.has(ModelTypeFlags.MODEL_TYPE)
            && a.get(ModelTypeFlags.MODEL_TYPE).equals("deepseek4_base")).build();
    ConversionRequest r = ConversionRequest.mcore2mcore(loadDir, Cli.absolute(a.require("save-dir")), source,
        target);
    ConversionRequest.Lora lora = Mcore2Hf.lora(a);
    if (lora != null) {
      r = r.withLora(lora);
    }
    if (a.has("model-config")) {
      r = r.withModelConfig(Cli.absolute(a.get("model-config")));
    }
    r = r.withOptions(Conversion.options(a)).withExistingOutput(Conversion.existingOutput(a));
    if (a.has("dry-run")) {
      Mcore2McorePlan plan = (Mcore2McorePlan) Conversion.check(r, options, log).plan;
      log.printf("reads %d rank file(s) of %s%n", plan.source().rankFiles().size(),
          plan.source().rankFiles().get(0).split("/")[0]);
      DryRun.print(plan.target(), List.of(), r.saveDir(), log);
      return 0;
    }
    return Conversion.run(r, options, log, a.has("quiet"));
  }
}
