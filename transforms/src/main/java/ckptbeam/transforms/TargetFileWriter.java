package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * What writing any target file shares, whatever its format: tensor specs whose bytes the assembler streams from the
 * located sources when the format writer asks for them, the record of every tensor written, and the output staged
 * until complete ({@link StagedOutput}). {@link RankFileWriter} and {@link HfShardWriter} add only their format.
 */
final class TargetFileWriter implements AutoCloseable {
  private final String relative;
  private final Map<String, TensorLocation> sources;
  private final TensorAssembler assembler = new TensorAssembler();
  private final List<WrittenFile.Tensor> written = new ArrayList<>();
  private long tensorBytes;

  /** @param relative the file's path under the save dir */
  TargetFileWriter(String relative, Map<String, TensorLocation> sources) {
    this.relative = relative;
    this.sources = sources;
  }

  String relative() {
    return relative;
  }

  /** A tensor whose bytes are assembled as they are written; its dtype is its sources'. */
  TensorSpec spec(AssembledTensor t) throws IOException {
    return new TensorSpec(t.key(), TensorAssembler.dtypeOf(t, sources), t.shape(),
        sink -> assembler.write(t, sources, sink));
  }

  /** Records a tensor the file holds under {@code key}, made from {@code from}'s sources. */
  void record(String key, TensorSpec e, AssembledTensor from) {
    written.add(new WrittenFile.Tensor(key, e.dtype().safetensorsName(), e.shape().dims(),
        new ArrayList<>(from.sources())));
    tensorBytes += e.byteSize();
  }

  /** Writes the file under {@code saveDir} with {@code body}, staged, and says what was written. */
  WrittenFile write(String saveDir, PipelineOptions storage, StagedOutput.Body body) throws IOException {
    StagedOutput.Result result = StagedOutput.write(CheckpointFiles.resolve(saveDir, relative), storage, body);
    return new WrittenFile(relative, result.bytes, tensorBytes, result.sha256, written, false);
  }

  @Override
  public void close() throws IOException {
    assembler.close();
  }
}
