package ckptbeam.transforms;

import ckptbeam.io.AssembledTensor;
import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.DType;
import ckptbeam.io.Nf4Quantizer;
import ckptbeam.io.DigestingChannel;
import ckptbeam.io.TorchZipWriter;
import ckptbeam.io.TensorAssembler;
import ckptbeam.io.TensorLocation;
import ckptbeam.io.TensorSpec;
import ckptbeam.io.TorchCheckpointWriter;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes one mcore rank file: evaluates the plan's tensor descriptions against the located sources and streams
 * the bytes into a torch zip. The file is written under a staging name and moved into place only when complete,
 * so a crash never leaves a rank file that looks finished.
 */
public final class RankFileWriter {
  static final String STAGING_SUFFIX = ".ckptbeam-partial";

  private RankFileWriter() {}

  public static WrittenFile write(Hf2McorePlan plan, RankFile file, Map<String, TensorLocation> sources,
      String saveDir) throws IOException {
    String relative = file.relativePath(Hf2McorePlan.ITERATION);
    String destination = CheckpointFiles.resolve(saveDir, relative);
    Map<String, List<AssembledTensor>> contents = plan.contents(file);
    Path staged = stagingPath(destination);
    List<WrittenFile.Tensor> written = new ArrayList<>();
    long tensorBytes = 0;
    String sha256;
    try (TensorAssembler assembler = new TensorAssembler()) {
      Map<String, Object> root = new LinkedHashMap<>();
      if (!plan.options().hasVirtualChunks()) {
        root.put("model", null); // keeps the reference's key order: model, checkpoint_version, iteration
      }
      root.put("checkpoint_version", 3.0);
      root.put("iteration", Hf2McorePlan.ITERATION);
      for (Map.Entry<String, List<AssembledTensor>> chunk : contents.entrySet()) {
        Map<String, Object> model = new LinkedHashMap<>();
        for (AssembledTensor t : chunk.getValue()) {
          DType dtype = TensorAssembler.dtypeOf(t, sources);
          TensorSpec spec = new TensorSpec(t.key(), dtype, t.shape(), sink -> assembler.write(t, sources, sink));
          // --qlora-nf4: the weight becomes its packed data plus the quant-state entries (§7.1, §7.6)
          List<TensorSpec> entries = plan.options().quantises(t.key())
              ? new Nf4Quantizer(plan.options().nf4, dtype, t.shape(), spec.bytes()).entries(t.key()) : List.of(spec);
          for (TensorSpec e : entries) {
            if (model.put(e.name(), new TorchCheckpointWriter.Tensor(e)) != null) {
              throw new IllegalStateException(relative + ": the plan has key " + e.name() + " twice");
            }
            written.add(new WrittenFile.Tensor(chunk.getKey() + "/" + e.name(), e.dtype().safetensorsName(),
                e.shape().dims(), new ArrayList<>(t.sources())));
            tensorBytes += e.byteSize();
          }
        }
        root.put(chunk.getKey(), model);
      }
      try (FileChannel out = FileChannel.open(staged, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        // torch's own zip layout is written strictly in order: the file's SHA-256 comes with the writing
        DigestingChannel digest = new DigestingChannel(out);
        TorchCheckpointWriter.write(digest, "model_optim_rng", root, TorchZipWriter.Layout.TORCH);
        sha256 = digest.sha256();
      }
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(staged);
      throw e;
    }
    long bytes = Files.size(staged);
    CheckpointFiles.publish(staged, destination);
    return new WrittenFile(relative, bytes, tensorBytes, sha256, written, false);
  }

  /** Next to a local destination (so the final move is an atomic rename), else in the temp folder. */
  static Path stagingPath(String destination) throws IOException {
    if (CheckpointFiles.isLocal(destination)) {
      Path dest = Paths.get(destination);
      Files.createDirectories(dest.getParent());
      return dest.resolveSibling(dest.getFileName() + STAGING_SUFFIX);
    }
    return Files.createTempFile("ckptbeam-", STAGING_SUFFIX);
  }
}
