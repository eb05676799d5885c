package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/** Writes one HF safetensors shard from tensor descriptions, staged until complete ({@link StagedOutput}). */
final class HfShardWriter {
  private HfShardWriter() {}

  static WrittenFile write(String target, List<AssembledTensor> tensors, Map<String, TensorLocation> sources,
      String saveDir, PipelineOptions storage) throws IOException {
    try (TargetFileWriter file = new TargetFileWriter(target, sources)) {
      List<TensorSpec> specs = new ArrayList<>();
      for (AssembledTensor t : tensors) {
        TensorSpec spec = file.spec(t);
        specs.add(spec);
        file.record(t.key(), spec, t);
      }
      return file.write(saveDir, storage, out -> SafetensorsWriter.write(out, specs, SafetensorsWriter.PT_METADATA));
    }
  }
}
