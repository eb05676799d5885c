package ckptbeam.io.compute;

import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.Objects;

/**
 * A LoRA delta to add to a base tensor as it is read (docs/mapping.md §5.5): the base's buffer is {@code batches} blocks
 * of {@code rows × cols}, and block b gets {@code scale · (left_b · right_b)} where {@code left} holds
 * {@code batches × rows × rank} and {@code right} {@code batches × rank × cols} elements. A plain linear layer is one
 * batch with left = B [out, r] and right = A [r, in]; grouped-GEMM experts are one batch per local expert with
 * left = {@code weightN_lora_a}, right = {@code weightN_lora_b}.
 */
public final class LoraMerge implements ComputedSource {
  private static final long serialVersionUID = 1L;

  public final TensorLocation left;
  public final TensorLocation right;
  public final long batches;
  public final long rows;
  public final long cols;
  public final long rank;
  public final float scale;

  public LoraMerge(TensorLocation left, TensorLocation right, long batches, long rows, long cols, long rank,
      float scale) {
    this.left = Objects.requireNonNull(left);
    this.right = Objects.requireNonNull(right);
    this.batches = batches;
    this.rows = rows;
    this.cols = cols;
    this.rank = rank;
    this.scale = scale;
    if (left.shape().numel() != batches * rows * rank || right.shape().numel() != batches * rank * cols) {
      throw new IllegalArgumentException("LoRA factors " + left.name() + left.shape() + " and " + right.name()
          + right.shape() + " do not fit " + batches + " x [" + rows + ", " + cols + "] with rank " + rank);
    }
  }

  @Override
  public RangeReader open(TensorLocation self) throws IOException {
    return new MergedRangeReader(self, this);
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof LoraMerge)) {
      return false;
    }
    LoraMerge m = (LoraMerge) o;
    return left.equals(m.left) && right.equals(m.right) && batches == m.batches && rows == m.rows && cols == m.cols
        && rank == m.rank && Float.floatToIntBits(scale) == Float.floatToIntBits(m.scale);
  }

  @Override
  public int hashCode() {
    return Objects.hash(left, right, batches, rows, cols, rank, scale);
  }
}
