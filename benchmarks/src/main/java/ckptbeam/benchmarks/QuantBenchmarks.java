package ckptbeam.benchmarks;

import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.compute.Nf4;
import ckptbeam.io.compute.Nf4Quantizer;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
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
 * NF4 quantisation and FP8 dequantisation through the production code (the streaming quantiser; the dequantising
 * reader under the assembler), on a 1024 x 1024 weight: 2 MiB of bf16 input for NF4, 1 MiB of FP8 input.
 * GB/s of input = input bytes / (seconds per op).
 */
@State(Scope.Thread)
@BenchmarkMode(Mode.AverageTime)
@OutputTimeUnit(TimeUnit.MICROSECONDS)
@Warmup(iterations = 3, time = 1)
@Measurement(iterations = 5, time = 1)
@Fork(1)
public class QuantBenchmarks {
  static final int N = 1024;

  byte[] bf16;
  Path fp8File;
  TensorLocation fp8;
  AssembledTensor whole;
  TensorAssembler assembler;
  final WritableByteChannel discard = new WritableByteChannel() {
    @Override
    public int write(ByteBuffer src) {
      int n = src.remaining();
      src.position(src.limit());
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  };

  @Setup(Level.Trial)
  public void setup() throws IOException {
    SplittableRandom r = new SplittableRandom(5);
    ByteBuffer b = ByteBuffer.allocate(N * N * 2).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < N * N; i++) {
      b.putShort(BFloat16.fromFloat((float) r.nextGaussian() * 0.02f));
    }
    bf16 = b.array();
    byte[] codes = new byte[N * N];
    r.nextBytes(codes);
    ByteBuffer scales = ByteBuffer.allocate(8 * 8 * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 64; i++) {
      scales.putFloat(1e-3f);
    }
    fp8File = Files.createTempFile("fp8-bench", ".bin");
    Files.write(fp8File, codes);
    Files.write(fp8File, scales.array(), StandardOpenOption.APPEND);
    TensorLocation w = new TensorLocation("w", fp8File.toString(), DType.F8_E4M3, Shape.of(N, N), 0);
    TensorLocation s = new TensorLocation("w_scale_inv", fp8File.toString(), DType.F32, Shape.of(8, 8), N * N);
    fp8 = new Fp8Dequant(w, s, 128, 128).asBf16();
    whole = new AssembledTensor("w", Shape.of(N, N), List.of(Band.of(SourceSlice.whole("w", N, N))));
    assembler = new TensorAssembler();
  }

  @TearDown(Level.Trial)
  public void tearDown() throws IOException {
    assembler.close();
    Files.deleteIfExists(fp8File);
  }

  private void quantise(Nf4.Format f) throws IOException {
    Nf4Quantizer q = new Nf4Quantizer(f, DType.BF16, Shape.of(N, N), sink -> sink.write(ByteBuffer.wrap(bf16)));
    q.entries("w").get(0).bytes().writeTo(discard); // the packed data: the bulk of the work
  }

  @Benchmark
  public void nf4QuantiseNpuFormat() throws IOException {
    quantise(Nf4.Format.NPU);
  }

  @Benchmark
  public void nf4QuantiseBitsandbytesFormat() throws IOException {
    quantise(Nf4.Format.BITSANDBYTES);
  }

  @Benchmark
  public void fp8DequantiseToBf16() throws IOException {
    assembler.write(whole, Map.of("w", fp8), discard);
  }
}
