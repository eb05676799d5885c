package ckptbeam.benchmarks;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.io.torch.TorchCheckpointWriter;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Level;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.TearDown;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The whole rank-file writer on pass-through bytes, from a safetensors source in page cache (tmpfs) to a rank file in
 * tmpfs: source ranges read by the assembler, CRC-32 and the zip layout, write-behind, SHA-256, staged output. Against
 * a plain 8 MiB read/write copy of the same bytes and a kernel copy ({@code cp}'s way). Each call moves
 * {@link #BYTES} bytes (32 tensors of 8 MiB): GB/s = 0.268 / (seconds per op). {@code -Dbench.dir} picks another
 * folder (default /dev/shm).
 */
@State(Scope.Benchmark)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MILLISECONDS)
@Warmup(iterations = 3, time = 2)
@Measurement(iterations = 5, time = 2)
@Fork(1)
public class WriterBenchmarks {
  static final int TENSORS = 32;
  static final int ROWS = 2048;
  static final int COLS = 2048;
  static final long BYTES = (long) TENSORS * ROWS * COLS * 2;

  Path dir;
  Path source;
  Map<String, TensorLocation> locations;
  List<AssembledTensor> plan;

  @Setup
  public void setup() throws IOException {
    dir = Files.createTempDirectory(Path.of(System.getProperty("bench.dir", "/dev/shm")), "ckptbeam-writer-");
    source = dir.resolve("source.safetensors");
    List<TensorSpec> tensors = new ArrayList<>();
    byte[] values = new byte[ROWS * COLS * 2];
    new SplittableRandom(1).nextBytes(values);
    for (int i = 0; i < TENSORS; i++) {
      tensors.add(new TensorSpec("w" + i, DType.BF16, Shape.of(ROWS, COLS), sink -> {
        ByteBuffer b = ByteBuffer.wrap(values);
        while (b.hasRemaining()) {
          sink.write(b);
        }
      }));
    }
    try (FileChannel out = FileChannel.open(source, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      SafetensorsWriter.write(out, tensors, SafetensorsWriter.PT_METADATA);
    }
    locations = new LinkedHashMap<>();
    for (TensorLocation t : SafetensorsHeader.read(source.toString()).tensors()) {
      locations.put(t.name(), t);
    }
    plan = new ArrayList<>();
    for (String name : locations.keySet()) {
      plan.add(new AssembledTensor("decoder.layers.0." + name, Shape.of(ROWS, COLS),
          List.of(Band.of(SourceSlice.whole(name, ROWS, COLS)))));
    }
  }

  @TearDown
  public void tearDown() throws IOException {
    try (var files = Files.list(dir)) {
      for (Path p : (Iterable<Path>) files::iterator) {
        Files.delete(p);
      }
    }
    Files.delete(dir);
  }

  /** Each call writes a new file, as a conversion does (replacing one would time freeing the old one's pages). */
  @Setup(Level.Invocation)
  public void removeOutputs() throws IOException {
    Files.deleteIfExists(dir.resolve("out.pt"));
    Files.deleteIfExists(dir.resolve("copy"));
  }

  /** The rank-file writer: pass-through tensors into a torch zip, staged, hashed. */
  @Benchmark
  public long rankFileWriter() throws IOException {
    try (TensorAssembler assembler = new TensorAssembler()) {
      Map<String, Object> model = new LinkedHashMap<>();
      for (AssembledTensor t : plan) {
        model.put(t.key(), new TorchCheckpointWriter.Tensor(new TensorSpec(t.key(), DType.BF16, t.shape(),
            sink -> assembler.write(t, locations, sink))));
      }
      Map<String, Object> root = new LinkedHashMap<>();
      root.put("model", model);
      root.put("checkpoint_version", 3.0);
      root.put("iteration", 1);
      return StagedOutput.write(dir.resolve("out.pt").toString(), null,
          out -> TorchCheckpointWriter.write(out, "model_optim_rng", root)).bytes;
    }
  }

  /** The floor: the same bytes read and written in 8 MiB chunks, nothing else. */
  @Benchmark
  public long plainCopyBaseline() throws IOException {
    ByteBuffer b = ByteBuffer.allocateDirect(8 << 20);
    long total = 0;
    try (FileChannel in = FileChannel.open(source);
        FileChannel out = FileChannel.open(dir.resolve("copy"), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      long pos = 0;
      while (true) {
        b.clear();
        int n = in.read(b, pos);
        if (n < 0) {
          break;
        }
        pos += n;
        b.flip();
        while (b.hasRemaining()) {
          total += out.write(b);
        }
      }
    }
    return total;
  }

  /** What `cp` does: the kernel copies the file (sendfile / copy_file_range); no byte enters this process. */
  @Benchmark
  public long kernelCopyBaseline() throws IOException {
    long total = 0;
    try (FileChannel in = FileChannel.open(source);
        FileChannel out = FileChannel.open(dir.resolve("copy"), StandardOpenOption.CREATE, StandardOpenOption.WRITE,
            StandardOpenOption.TRUNCATE_EXISTING)) {
      long size = in.size();
      while (total < size) {
        total += in.transferTo(total, size - total, out);
      }
    }
    return total;
  }
}
