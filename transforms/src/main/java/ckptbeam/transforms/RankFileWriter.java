package ckptbeam.transforms;

import ckptbeam.io.compute.Nf4Quantizer;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.io.torch.PickleWriter;
import ckptbeam.io.torch.TorchCheckpointWriter;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * Writes one mcore rank file: evaluates the plan's tensor descriptions against the located sources and streams the
 * bytes into a torch zip, staged until complete ({@link StagedOutput}).
 */
public final class RankFileWriter {
  private RankFileWriter() {}

  public static WrittenFile write(Hf2McorePlan plan, RankFile file, Map<String, TensorLocation> sources,
      String saveDir, PipelineOptions storage) throws IOException {
    return write(plan, file, plan.contents(file), sources, saveDir, storage);
  }

  /** Writes {@code file} of {@code plan}'s layout with {@code contents} (the plan's, or composed from it). */
  public static WrittenFile write(Hf2McorePlan plan, RankFile file, Map<String, List<AssembledTensor>> contents,
      Map<String, TensorLocation> sources, String saveDir, PipelineOptions storage)
      throws IOException {
    try (TargetFileWriter out = new TargetFileWriter(file.relativePath(Hf2McorePlan.ITERATION), sources)) {
      Map<String, Object> root = new LinkedHashMap<>();
      if (plan.config().v4()) {
        // MindSpeed's V4 order: args, checkpoint_version, iteration, then the chunks (docs/formats.md §1.11)
        root.put("args", new PickleWriter.Namespace(McoreArgs.v4(plan.config(), plan.options())));
      } else if (!plan.options().hasVirtualChunks()) {
        root.put("model", null); // keeps the reference's key order: model, checkpoint_version, iteration
      }
      root.put("checkpoint_version", 3.0);
      root.put("iteration", Hf2McorePlan.ITERATION);
      for (Map.Entry<String, List<AssembledTensor>> chunk : contents.entrySet()) {
        Map<String, Object> model = new LinkedHashMap<>();
        for (AssembledTensor t : chunk.getValue()) {
          TensorSpec spec = out.spec(t);
          // --qlora-nf4: the weight becomes its packed data plus the quant-state entries (§7.1, §7.6)
          List<TensorSpec> entries = plan.options().quantises(t.key())
              ? new Nf4Quantizer(plan.options().nf4(), spec.dtype(), t.shape(), spec.bytes()).entries(t.key())
              : List.of(spec);
          for (TensorSpec e : entries) {
            if (model.put(e.name(), new TorchCheckpointWriter.Tensor(e)) != null) {
              throw new IllegalStateException(out.relative() + ": the plan has key " + e.name() + " twice");
            }
            out.record(chunk.getKey() + "/" + e.name(), e, t);
          }
        }
        root.put(chunk.getKey(), model);
      }
      // torch's own zip layout is written strictly in order: the file's SHA-256 comes with the writing
      return out.write(saveDir, storage,
          zip -> TorchCheckpointWriter.write(zip, "model_optim_rng", root));
    }
  }
}
