package ckptbeam.transforms;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * What a conversion writes, in either direction: its target files, the source tensors each one reads (with the
 * shape each must have), and how to write one target from its located sources. Pure and deterministic, so every
 * worker can recompute any part of it; only names and shapes travel through the pipeline.
 */
public interface ConversionPlan extends Serializable {
  /** Paths of the target files relative to the save dir, sorted. */
  List<String> targets();

  /** Source tensor name → expected shape, for one target. */
  Map<String, Shape> sourcesOf(String target);

  /**
   * The tensors one target holds, each assembled from sources, when the plan can say before writing (for checks at
   * planning time: the sources of one tensor must share a dtype); empty when it cannot.
   */
  default List<AssembledTensor> tensorsOf(String target) {
    return List.of();
  }

  /** The model this conversion moves (dimensions and family), or null for a plan that does not know it. */
  default ModelConfig modelConfig() {
    return null;
  }

  /**
   * Writes one target, streaming the bytes of its sources; returns what was written. {@code storage}: the
   * pipeline's options, for remote outputs (gs:// endpoint, credentials, upload chunk size), or null.
   */
  WrittenFile write(String target, Map<String, TensorLocation> sources, String saveDir, PipelineOptions storage)
      throws IOException;
}
