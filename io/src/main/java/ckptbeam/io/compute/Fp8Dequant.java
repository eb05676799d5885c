package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.Objects;

/**
 * A DeepSeek FP8 weight read as bf16 (docs/formats.md §3.3): {@code out[i][j] = bf16(f32(w[i][j]) · scale[i/B][j/B])},
 * with the float32 block scales of {@code <name>_scale_inv}, which may sit in another shard.
 */
public final class Fp8Dequant implements ComputedSource {
  private static final long serialVersionUID = 1L;

  public final TensorLocation weight;
  public final TensorLocation scale;
  public final int blockRows;
  public final int blockCols;

  public Fp8Dequant(TensorLocation weight, TensorLocation scale, int blockRows, int blockCols) {
    this.weight = Objects.requireNonNull(weight);
    this.scale = Objects.requireNonNull(scale);
    this.blockRows = blockRows;
    this.blockCols = blockCols;
  }

  /** The bf16 tensor this reads as; its offset is 0 (a virtual buffer). */
  public TensorLocation asBf16() throws CheckpointFormatException {
    Shape w = weight.shape();
    if (weight.dtype() != DType.F8_E4M3) {
      throw new CheckpointFormatException(weight.file(), "Fp8", "tensor \"" + weight.name() + "\" is " + weight.dtype()
          + ", not F8_E4M3");
    }
    if (scale.dtype() != DType.F32) {
      // ue8m0 scales (V3.1/V3.2) are powers of two, exact in float32; a scale stored in another dtype is not guessed
      throw new CheckpointFormatException(scale.file(), "Fp8", "scale \"" + scale.name() + "\" is " + scale.dtype()
          + "; block scales are read as float32 only (ue8m0 scales stored as float32 are exact)");
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
    return weight.equals(d.weight) && scale.equals(d.scale) && blockRows == d.blockRows && blockCols == d.blockCols;
  }

  @Override
  public int hashCode() {
    return Objects.hash(weight, scale, blockRows, blockCols);
  }
}
