package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.torch.McoreTracker;
import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * Conversions that read mcore rank files (mcore2hf, mcore2mcore, the LoRA export): the model config (in the load
 * dir, {@code --hf-cfg-dir} or {@code --model-config}) and the layout the rank files were written with give the forward plan, which
 * every one of them inverts; the tracker names the iteration; every rank file of the layout must be there.
 */
final class McoreInputPlanner implements KindPlanner {
  @Override
  public CheckedConversion plan(ConversionRequest r, boolean validate) throws IOException {
    if (r.hfConfigDir() != null && r.hfConfigDir().equals(ConversionRequest.withoutTrailingSlash(r.saveDir()))) {
      // MindSpeed's script writes into the HF folder it read; here the output would copy files onto themselves and
      // leave the folder's own shards beside the new ones
      throw new IllegalArgumentException("--hf-cfg-dir " + r.hfConfigDir() + " is the save dir: write the HF output "
          + "into another folder");
    }
    McoreInputConfig config = McoreInputConfig.of(r);
    ModelConfig in = config.parse();
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(in, r.layout());
    LoraOptions lora = null;
    if (r.lora() != null) {
      String loraDir = r.lora().loraDir;
      lora = new LoraOptions(r.lora().rank, r.lora().alpha, loraDir,
          loraDir == null ? null : McoreTracker.iterationDir(loraDir));
    }
    Map<String, String> identity = ConversionPlanner.identity(r.loadDir(), McoreTracker.FILE_NAME);
    identity.put("config.json", ckptbeam.io.storage.Sha256.of(config.json));
    if (lora != null && lora.loraDir != null) {
      identity.put("lora/" + McoreTracker.FILE_NAME,
          ConversionPlanner.sha256IfExists(CheckpointFiles.resolve(lora.loraDir, McoreTracker.FILE_NAME)));
    }
    identity.values().removeIf(v -> v == null);
    LayoutOptions to = null;
    if (r.kind() == ConversionRequest.Kind.MCORE2MCORE) {
      // what hf2mcore would do with the HF checkpoint mcore2hf writes: its config, the new layout
      to = r.targetLayout();
      if (to.mtpLayers() != r.layout().mtpLayers() || to.firstKDense() != r.layout().firstKDense()) {
        throw new LayoutException(List.of(LayoutException.Setting.MTP_LAYERS, " and ",
            LayoutException.Setting.FIRST_K_DENSE, " are shared by both layouts: the source and target must agree"));
      }
      to = ConversionPlanner.targetLayout(to, forward.config());
    }
    String fingerprint = ConversionPlanner.fingerprint(r, identity, forward.options(), to);
    OutputRecords.Manifest header = ConversionPlanner.manifestHeader(r, identity, fingerprint);
    String iterationDir = McoreTracker.iterationDir(r.loadDir());
    if (r.kind() == ConversionRequest.Kind.LORA_EXPORT) {
      if (in.v4()) {
        throw new IOException(config.source + ": a DeepSeek-V4 model; exporting its LoRA factors as a PEFT adapter "
            + "(--save-lora-to-hf) is not supported (MindSpeed's V4 converter has no export either); merge them "
            + "instead (mcore2hf --lora-r --lora-alpha)");
      }
      String iteration = lora.loraDir != null ? lora.loraIterationDir : iterationDir;
      LoraExportPlan plan = new LoraExportPlan(forward, iteration, lora.rank, r.loraTargetModules());
      CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), Map.of(),
          Map.of("adapter_config.json", PythonJson.write(plan.adapterConfig(lora.alpha), 2)),
          SafetensorsIndex.FILE_NAME, new ConversionPlanner.IndexMarker(plan), header);
      return new CheckedConversion(r, plan, commit, fingerprint, List.of(), -1, new LoraFactorSources(
          plan.rankFiles(), lora.loraDir != null ? lora.loraDir : r.loadDir()));
    }
    Mcore2HfPlan plan = new Mcore2HfPlan(forward, iterationDir);
    for (String rank : validate ? plan.rankFiles() : List.<String>of()) {
      String path = CheckpointFiles.resolve(r.loadDir(), rank);
      if (!CheckpointFiles.exists(path)) {
        LayoutOptions o = forward.options();
        throw new IOException(path + ": rank file missing; the layout it was written with (tensor/pipeline/expert "
            + "parallel sizes " + o.tp() + "/" + o.pp() + "/" + o.ep() + ") needs " + plan.rankFiles().size()
            + " of them");
      }
    }
    InputSources sources = new RankFileSources(plan, r.loadDir(), lora);
    Map<String, byte[]> generated = Map.of("config.json", ConversionPlanner.outputConfig(config.json, in,
        forward.config()));
    List<String> notes = config.note() == null ? List.of() : List.of(config.note());
    Map<String, String> sideFiles = r.hfConfigDir() != null ? ConversionPlanner.hfConfigFiles(r.hfConfigDir())
        : ConversionPlanner.sideFiles(r.loadDir(), "config.json");
    if (to != null) {
      // as hf2mcore of what mcore2hf writes: a Base type's output has the MTP layers' own embedding
      Hf2McorePlan target = new Hf2McorePlan(forward.config().withOwnMtpEmbedding(to.v4Base()), to);
      Mcore2McorePlan both = new Mcore2McorePlan(plan, target);
      CheckpointCommit commit = new CheckpointCommit(r.saveDir(), both.targets(), sideFiles, generated,
          Hf2McorePlan.TRACKER, CheckpointCommit.tracker(Hf2McorePlan.ITERATION), header);
      return new CheckedConversion(r, both, commit, fingerprint, notes, ConversionPlanner.plannedBytes(target),
          sources);
    }
    CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), sideFiles, generated,
        SafetensorsIndex.FILE_NAME, new ConversionPlanner.IndexMarker(plan), header);
    return new CheckedConversion(r, plan, commit, fingerprint, notes, -1, sources);
  }
}
