package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.Float8E4M3;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Reads the virtual bf16 buffer of an {@link Fp8Dequant}: any byte range of it, computed from the FP8 bytes and the
 * float32 block scales exactly as DeepSeek's kernel does (exact fp8 → f32, one f32 multiply, round to nearest even
 * to bf16). Memory: one chunk of FP8 bytes and one row of scales.
 */
final class DequantRangeReader implements RangeReader {
  private final Fp8Dequant d;
  private final RangeReader weights;
  private final RangeReader scales;
  private final long cols;
  private final int scaleCols;
  private long scaleRow = -1;
  private float[] rowScales;
  /** e8m0 scales: products are looked up in {@link E8m0Tables} (and a non-finite one is refused). */
  private final boolean strict;
  /** With e8m0 scales, the codes of {@link #rowScales}. */
  private final int[] rowScaleCodes;

  DequantRangeReader(Fp8Dequant d) throws IOException {
    this.d = d;
    this.weights = CheckpointFiles.open(d.weight.file());
    this.scales = CheckpointFiles.open(d.scale.file());
    this.cols = d.weight.shape().dim(1);
    this.scaleCols = (int) d.scale.shape().dim(1);
    this.rowScales = new float[scaleCols];
    this.rowScaleCodes = new int[scaleCols];
    this.strict = d.scale.dtype() == DType.F8_E8M0;
  }

  @Override
  public long size() {
    return d.weight.shape().numel() * 2;
  }

  @Override
  public void readFully(long offset, ByteBuffer dst) throws IOException {
    int length = dst.remaining();
    if (offset % 2 != 0 || length % 2 != 0 || offset + length > size()) {
      throw new IOException(d.weight.name() + ": dequantised read [" + offset + ", +" + length + ") is outside the "
          + "tensor or not element aligned");
    }
    long first = offset / 2;
    int n = length / 2;
    byte[] codes = Scratch.bytes(Scratch.CODES, n);
    weights.readFully(d.weight.offset() + first, ByteBuffer.wrap(codes, 0, n));
    ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    int pos = dst.position();
    for (int k = 0; k < n; ) {
      long e = first + k;
      long row = e / cols;
      int col = (int) (e % cols);
      loadScales(row / d.blockRows);
      int run = (int) Math.min(n - k, cols - col);
      if (strict) {
        // e8m0 scales: bf16(e4m3 · 2^(s−127)) for every pair is precomputed with this same arithmetic; one scale
        // block at a time (no division per element), and a product is finite unless its bf16 exponent is all ones
        for (int c = 0; c < run; ) {
          int block = (col + c) / d.blockCols;
          int end = Math.min(run, (block + 1) * d.blockCols - col);
          int table = rowScaleCodes[block] * 256;
          for (; c < end; c++, k++, pos += 2) {
            short v = E8m0Tables.FP8[table + (codes[k] & 0xFF)];
            if ((v & 0x7F80) == 0x7F80) {
              throw nonFinite(row, col + c, codes[k], Float8E4M3.toFloat(codes[k]) * rowScales[block]);
            }
            out.putShort(pos, v);
          }
        }
        continue;
      }
      for (int c = 0; c < run; c++, k++, pos += 2) {
        float y = Float8E4M3.toFloat(codes[k]) * rowScales[(col + c) / d.blockCols];
        short v = BFloat16.fromFloat(y);
        if (d.finiteOnly && (v & 0x7F80) == 0x7F80) {
          throw nonFinite(row, col + c, codes[k], y);
        }
        out.putShort(pos, v);
      }
    }
    dst.position(dst.limit());
  }

  private CheckpointFormatException nonFinite(long row, long col, byte code, float y) {
    return new CheckpointFormatException(d.weight.file(), "Fp8", "FP8 " + d.weight.name() + " [" + row + ", " + col
        + "] (code " + (code & 0xFF) + ") dequantises to " + y + "; a weight must be finite");
  }

  private void loadScales(long blockRow) throws IOException {
    if (blockRow == scaleRow) {
      return;
    }
    int size = d.scale.dtype().size();
    ByteBuffer b = ByteBuffer.allocate(scaleCols * size).order(ByteOrder.LITTLE_ENDIAN);
    scales.readFully(d.scale.offset() + blockRow * scaleCols * size, b);
    for (int i = 0; i < scaleCols; i++) {
      rowScales[i] = Fp8Dequant.scaleAt(d.scale.dtype(), b, i);
      rowScaleCodes[i] = strict ? b.get(i) & 0xFF : 0;
      Fp8Dequant.checkFinite(d.scale, blockRow * scaleCols + i, rowScales[i]); // planning checked them; a file may change
    }
    scaleRow = blockRow;
  }

  @Override
  public void close() throws IOException {
    weights.close();
    scales.close();
  }
}
