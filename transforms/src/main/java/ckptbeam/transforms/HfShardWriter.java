package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorAssembler;
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
    String destination = CheckpointFiles.resolve(saveDir, target);
    long tensorBytes = 0;
    List<WrittenFile.Tensor> written = new ArrayList<>();
    StagedOutput.Result result;
    try (TensorAssembler assembler = new TensorAssembler()) {
      List<TensorSpec> specs = new ArrayList<>();
      for (AssembledTensor t : tensors) {
        DType dtype = TensorAssembler.dtypeOf(t, sources);
        TensorSpec spec = new TensorSpec(t.key(), dtype, t.shape(), sink -> assembler.write(t, sources, sink));
        specs.add(spec);
        written.add(new WrittenFile.Tensor(t.key(), dtype.safetensorsName(), t.shape().dims(),
            new ArrayList<>(t.sources())));
        tensorBytes += spec.byteSize();
      }
      result = StagedOutput.write(destination, storage, out -> SafetensorsWriter.write(out, specs, SafetensorsWriter.PT_METADATA));
    }
    return new WrittenFile(target, result.bytes, tensorBytes, result.sha256, written, false);
  }
}
