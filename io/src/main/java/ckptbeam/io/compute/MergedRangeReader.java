package ckptbeam.io.compute;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Kernels;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * Reads a base tensor's bytes with its LoRA delta merged in (docs/mapping.md §5.5), for whatever byte range is asked:
 * {@code W' = round(W + round(scale · round(left·right)))}, each step rounded to the base dtype. The product is
 * summed exactly (in double: the products of bf16 or float32 factors of a small rank are exact there) and rounded
 * once to float32, so the result does not depend on an accumulation order. Memory: one batch of the right factor
 * and a block of left rows.
 */
final class MergedRangeReader implements RangeReader {
  private static final int LEFT_BLOCK_ROWS = 1024;

  private final TensorLocation loc;
  private final RangeReader base;
  private final RangeReader leftIn;
  private final RangeReader rightIn;
  private final LoraMerge m;
  private final int es;
  private long rightBatch = -1;
  private float[] right; // rank x cols of the current batch
  private long leftBatch = -1;
  private long leftFirstRow = -1;
  private float[] left; // LEFT_BLOCK_ROWS x rank
  private double[] acc = new double[0];

  MergedRangeReader(TensorLocation loc, LoraMerge merge) throws IOException {
    this.loc = loc;
    this.m = merge;
    if (loc.dtype() != DType.BF16 && loc.dtype() != DType.F32) {
      throw new IOException(loc.name() + ": LoRA merge into a " + loc.dtype() + " base is not supported");
    }
    for (TensorLocation f : new TensorLocation[] {m.left, m.right}) {
      if (f.dtype() != DType.BF16 && f.dtype() != DType.F32) {
        throw new IOException(f.name() + ": LoRA factor of dtype " + f.dtype() + " is not supported");
      }
    }
    this.es = loc.dtype().size();
    this.base = CheckpointFiles.open(loc.file());
    this.leftIn = CheckpointFiles.open(m.left.file());
    this.rightIn = CheckpointFiles.open(m.right.file());
  }

  @Override
  public long size() throws IOException {
    return base.size();
  }

  @Override
  public void readFully(long offset, ByteBuffer dst) throws IOException {
    int start = dst.position();
    int length = dst.remaining();
    base.readFully(offset, dst);
    long rel = offset - loc.offset();
    if (rel < 0 || rel % es != 0 || length % es != 0 || rel + length > loc.byteSize()) {
      throw new IOException(loc.name() + ": merged read [" + rel + ", +" + length + ") is outside the tensor or "
          + "not element aligned");
    }
    ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    long e = rel / es;
    long end = e + length / es;
    int pos = start;
    while (e < end) {
      long b = e / (m.rows * m.cols);
      long i = (e / m.cols) % m.rows;
      int j0 = (int) (e % m.cols);
      int n = (int) Math.min(m.cols - j0, end - e);
      rowDelta(b, i, j0, n);
      for (int k = 0; k < n; k++, pos += es) {
        float prod = (float) acc[k];
        float d = round(prod);
        float t = round(d * m.scale);
        if (es == 2) {
          float w = BFloat16.toFloat(out.getShort(pos));
          out.putShort(pos, BFloat16.fromFloat(w + t));
        } else {
          out.putFloat(pos, out.getFloat(pos) + t);
        }
      }
      e += n;
    }
  }

  /** acc[0..n) = exact left_b[i, :] · right_b[:, j0 .. j0+n). */
  private void rowDelta(long b, long i, int j0, int n) throws IOException {
    loadRight(b);
    loadLeft(b, i);
    if (acc.length < n) {
      acc = new double[(int) m.cols];
    }
    Arrays.fill(acc, 0, n, 0.0);
    int r = (int) m.rank;
    int cols = (int) m.cols;
    int lrow = (int) (i - leftFirstRow) * r;
    for (int k = 0; k < r; k++) {
      double p = left[lrow + k];
      if (p == 0) {
        continue;
      }
      int q = k * cols + j0;
      for (int j = 0; j < n; j++) {
        acc[j] += p * right[q + j];
      }
    }
  }

  private void loadRight(long b) throws IOException {
    if (b == rightBatch) {
      return;
    }
    long count = m.rank * m.cols;
    if (count > Integer.MAX_VALUE / 4) {
      throw new IOException(m.right.name() + ": LoRA factor too large to merge");
    }
    right = readFloats(rightIn, m.right, b * count, (int) count, right);
    rightBatch = b;
  }

  private void loadLeft(long b, long i) throws IOException {
    if (b == leftBatch && i >= leftFirstRow && i < leftFirstRow + LEFT_BLOCK_ROWS) {
      return;
    }
    long first = i;
    int rows = (int) Math.min(LEFT_BLOCK_ROWS, m.rows - first);
    left = readFloats(leftIn, m.left, (b * m.rows + first) * m.rank, (int) (rows * m.rank),
        left != null && left.length >= LEFT_BLOCK_ROWS * m.rank ? left : new float[(int) (LEFT_BLOCK_ROWS * m.rank)]);
    leftBatch = b;
    leftFirstRow = first;
  }

  /** {@code count} elements of a factor from element {@code first} on, widened to float. */
  private static float[] readFloats(RangeReader in, TensorLocation f, long first, int count, float[] reuse)
      throws IOException {
    float[] out = reuse != null && reuse.length >= count ? reuse : new float[count];
    int fes = f.dtype().size();
    ByteBuffer buf = ByteBuffer.allocate(count * fes).order(ByteOrder.LITTLE_ENDIAN);
    in.readFully(f.offset() + first * fes, buf);
    if (fes == 2) {
      Kernels.bf16ToF32(buf.array(), out, count);
    } else {
      buf.asFloatBuffer().get(out, 0, count);
    }
    return out;
  }

  private float round(float v) {
    return es == 2 ? BFloat16.toFloat(BFloat16.fromFloat(v)) : v;
  }

  @Override
  public void close() throws IOException {
    base.close();
    leftIn.close();
    rightIn.close();
  }
}
