package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Float8E8M0;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;

/**
 * A DeepSeek FP8 weight read as bf16 (docs/formats.md §3.3): {@code out[i][j] = bf16(f32(w[i][j]) · scale[i/B][j/B])},
 * with the block scales of {@code <name>_scale_inv} (V3: float32) or {@code <module>.scale} (V4: F8_E8M0, powers of
 * two, §3.7), which may sit in another shard. With e8m0 scales a non-finite result (a NaN code, an overflow) is
 * refused, as V4's rules ask; V3's float32 path keeps the reference's arithmetic as it is.
 */
public final class Fp8Dequant implements ComputedSource {
  private static final long serialVersionUID = 1L;

  public final TensorLocation weight;
  public final TensorLocation scale;
  public final int blockRows;
  public final int blockCols;
  /**
   * Whether a non-finite result (a NaN code, an overflowing product) is refused rather than written as DeepSeek's
   * kernel would: always with e8m0 scales, and for DeepSeek-V4 with float32 scales too (V4 spec §6.7 item 5).
   */
  public final boolean finiteOnly;

  /** V3's FP8: non-finite results refused with e8m0 scales only (float32 scales keep the reference's arithmetic). */
  public Fp8Dequant(TensorLocation weight, TensorLocation scale, int blockRows, int blockCols) {
    this(weight, scale, blockRows, blockCols, scale.dtype() == DType.F8_E8M0);
  }

  public Fp8Dequant(TensorLocation weight, TensorLocation scale, int blockRows, int blockCols, boolean finiteOnly) {
    this.weight = Objects.requireNonNull(weight);
    this.scale = Objects.requireNonNull(scale);
    this.blockRows = blockRows;
    this.blockCols = blockCols;
    this.finiteOnly = finiteOnly || scale.dtype() == DType.F8_E8M0;
  }

  /** The bf16 tensor this reads as; its offset is 0 (a virtual buffer). */
  public TensorLocation asBf16() throws CheckpointFormatException {
    Shape w = weight.shape();
    if (weight.dtype() != DType.F8_E4M3) {
      throw new CheckpointFormatException(weight.file(), "Fp8", "tensor \"" + weight.name() + "\" is " + weight.dtype()
          + ", not F8_E4M3");
    }
    if (scale.dtype() != DType.F32 && scale.dtype() != DType.F8_E8M0) {
      // ue8m0 scales (V3.1/V3.2) are powers of two, exact in float32; a scale stored in another dtype is not guessed
      throw new CheckpointFormatException(scale.file(), "Fp8", "scale \"" + scale.name() + "\" is " + scale.dtype()
          + "; block scales are read as float32 or F8_E8M0 only (ue8m0 scales stored as float32 are exact)");
    }
    if (w.rank() != 2 || scale.shape().rank() != 2
        || scale.shape().dim(0) != (w.dim(0) + blockRows - 1) / blockRows
        || scale.shape().dim(1) != (w.dim(1) + blockCols - 1) / blockCols) {
      throw new CheckpointFormatException(scale.file(), "Fp8", "scale \"" + scale.name() + "\" " + scale.dtype()
          + scale.shape() + " does not fit " + weight.name() + " " + w + " with " + blockRows + "x" + blockCols
          + " blocks");
    }
    return new TensorLocation(weight.name(), weight.file(), DType.BF16, w, 0).computedBy(this);
  }

  /**
   * Reads every scale of {@code dequants} once and refuses a non-finite one (NaN or ±infinity), naming the scale
   * tensor and the block: a poisoned scale would turn a whole 128×128 block of weights into NaN or infinity, and a
   * run would report success. Scales are small (one float per block, 1/16384 of the weights' elements), so this
   * reads about 0.02% of an FP8 checkpoint; each file is opened once, and files are read in parallel.
   */
  public static void checkScales(List<Fp8Dequant> dequants) throws IOException {
    Map<String, List<TensorLocation>> byFile = new TreeMap<>();
    for (Fp8Dequant d : dequants) {
      byFile.computeIfAbsent(d.scale.file(), f -> new ArrayList<>()).add(d.scale);
    }
    if (byFile.isEmpty()) {
      return;
    }
    ExecutorService pool = Executors.newFixedThreadPool(Math.min(8, byFile.size()), r -> {
      Thread t = new Thread(r, "ckptbeam-scale-check");
      t.setDaemon(true);
      return t;
    });
    try {
      List<Future<?>> done = new ArrayList<>();
      for (Map.Entry<String, List<TensorLocation>> e : byFile.entrySet()) {
        done.add(pool.submit(() -> {
          checkScalesOfFile(e.getKey(), e.getValue());
          return null;
        }));
      }
      for (Future<?> f : done) {
        try {
          f.get();
        } catch (ExecutionException x) {
          if (x.getCause() instanceof IOException) {
            throw (IOException) x.getCause();
          }
          throw new IOException(x.getCause());
        } catch (InterruptedException x) {
          Thread.currentThread().interrupt();
          throw new java.io.InterruptedIOException("interrupted while checking FP8 scales");
        }
      }
    } finally {
      pool.shutdownNow();
    }
  }

  /**
   * Reads every scale of {@code scales} (float32 or e8m0 tensors of {@code file}) and refuses a non-finite one, naming
   * the tensor and the block.
   */
  public static void checkScalesOfFile(String file, List<TensorLocation> scales) throws IOException {
    ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
    try (RangeReader r = CheckpointFiles.open(file)) {
      for (TensorLocation s : scales) {
        long count = s.shape().numel();
        int size = s.dtype().size();
        for (long done = 0; done < count; ) {
          int n = (int) Math.min(count - done, buf.capacity() / size);
          buf.clear().limit(n * size);
          r.readFully(s.offset() + done * size, buf);
          for (int i = 0; i < n; i++) {
            checkFinite(s, done + i, scaleAt(s.dtype(), buf, i));
          }
          done += n;
        }
      }
    }
  }

  /** Scale {@code i} of a buffer of float32 or e8m0 scales. */
  static float scaleAt(DType dtype, ByteBuffer buf, int i) {
    return dtype == DType.F8_E8M0 ? Float8E8M0.toFloat(buf.get(i)) : buf.getFloat(i * 4);
  }

  /** Refuses a scale that is NaN or infinite, naming the tensor and the block ({@code index}: its flat index). */
  static void checkFinite(TensorLocation scale, long index, float value) throws CheckpointFormatException {
    if (!Float.isFinite(value)) {
      // a scale of another rank (not yet checked against its weight) is named by its flat index
      String at = scale.shape().rank() == 2 ? "[" + index / scale.shape().dim(1) + ", " + index % scale.shape().dim(1)
          + "]" : "[" + index + "]";
      throw new CheckpointFormatException(scale.file(), "Fp8Scale", "scale \"" + scale.name() + "\" holds " + value
          + " at block " + at + "; a block scale must be a finite number");
    }
  }

  @Override
  public RangeReader open(TensorLocation self) throws IOException {
    return new DequantRangeReader(this);
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof Fp8Dequant)) {
      return false;
    }
    Fp8Dequant d = (Fp8Dequant) o;
    return weight.equals(d.weight) && scale.equals(d.scale) && blockRows == d.blockRows && blockCols == d.blockCols
        && finiteOnly == d.finiteOnly;
  }

  @Override
  public int hashCode() {
    return Objects.hash(weight, scale, blockRows, blockCols, finiteOnly);
  }
}
