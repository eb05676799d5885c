package ckptbeam.transforms;

import ckptbeam.io.AssembledTensor;
import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.DType;
import ckptbeam.io.DigestingChannel;
import ckptbeam.io.SafetensorsWriter;
import ckptbeam.io.TensorAssembler;
import ckptbeam.io.TensorLocation;
import ckptbeam.io.TensorSpec;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/** Writes one HF safetensors shard from tensor descriptions, staged and moved into place when complete. */
final class HfShardWriter {
  private HfShardWriter() {}

  static WrittenFile write(String target, List<AssembledTensor> tensors, Map<String, TensorLocation> sources,
      String saveDir) throws IOException {
    String destination = CheckpointFiles.resolve(saveDir, target);
    Path staged = RankFileWriter.stagingPath(destination);
    long tensorBytes = 0;
    List<WrittenFile.Tensor> written = new ArrayList<>();
    String sha256;
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
      try (FileChannel out = FileChannel.open(staged, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        DigestingChannel digest = new DigestingChannel(out);
        SafetensorsWriter.write(digest, specs, SafetensorsWriter.PT_METADATA);
        sha256 = digest.sha256();
      }
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(staged);
      throw e;
    }
    long bytes = Files.size(staged);
    CheckpointFiles.publish(staged, destination);
    return new WrittenFile(target, bytes, tensorBytes, sha256, written, false);
  }
}
