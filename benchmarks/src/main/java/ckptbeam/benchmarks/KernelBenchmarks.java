package ckptbeam.benchmarks;

import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.Kernels;
import java.nio.ByteBuffer;
import java.util.SplittableRandom;
import java.util.concurrent.TimeUnit;
import java.util.zip.CRC32;
import org.openjdk.jmh.annotations.Benchmark;
import org.openjdk.jmh.annotations.BenchmarkMode;
import org.openjdk.jmh.annotations.Fork;
import org.openjdk.jmh.annotations.Measurement;
import org.openjdk.jmh.annotations.Mode;
import org.openjdk.jmh.annotations.OutputTimeUnit;
import org.openjdk.jmh.annotations.Scope;
import org.openjdk.jmh.annotations.Setup;
import org.openjdk.jmh.annotations.State;
import org.openjdk.jmh.annotations.Warmup;

/**
 * The assembler's hot kernels on one 8 MiB buffer each, against a plain {@code System.arraycopy} of the same bytes.
 * Each benchmark moves {@link #BYTES} bytes per call: GB/s = 8.39e-3 / (seconds per op).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class KernelBenchmarks {
  static final int BYTES = 8 << 20;
  /** A bf16 expert block as the grouped-GEMM transpose sees it: 2048 source rows of 2048 elements. */
  static final int ROWS = 2048;
  static final int COLS = BYTES / 2 / ROWS;

  byte[] src;
  byte[] dst;
  float[] floats;
  ByteBuffer direct;

  @Setup
  public void setup() {
    src = new byte[BYTES];
    dst = new byte[BYTES];
    new SplittableRandom(1).nextBytes(src);
    floats = new float[BYTES / 2];
    Kernels.bf16ToF32(src, floats, floats.length);
    direct = ByteBuffer.allocateDirect(BYTES);
    direct.put(src).flip();
  }

  @Benchmark
  public byte[] arraycopyBaseline() {
    System.arraycopy(src, 0, dst, 0, BYTES);
    return dst;
  }

  @Benchmark
  public byte[] transposeBf16Block() {
    Kernels.transpose(src, COLS * 2, ROWS, COLS, 2, dst, ROWS * 2, 0);
    return dst;
  }

  @Benchmark
  public float[] bf16ToF32() {
    Kernels.bf16ToF32(src, floats, floats.length);
    return floats;
  }

  /** The per-element narrowing every computed source (LoRA merge, FP8 and NF4 dequantisation) ends with. */
  @Benchmark
  public byte[] f32ToBf16() {
    for (int i = 0; i < floats.length; i++) {
      short s = BFloat16.fromFloat(floats[i]);
      dst[2 * i] = (byte) s;
      dst[2 * i + 1] = (byte) (s >> 8);
    }
    return dst;
  }

  @Benchmark
  public long crc32Heap() {
    CRC32 crc = new CRC32();
    crc.update(src, 0, BYTES);
    return crc.getValue();
  }

  @Benchmark
  public long crc32Direct() {
    CRC32 crc = new CRC32();
    crc.update(direct.duplicate());
    return crc.getValue();
  }
}
