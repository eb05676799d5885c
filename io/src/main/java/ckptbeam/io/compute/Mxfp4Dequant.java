package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Float4E2M1;
import ckptbeam.io.tensor.Float8E8M0;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * A DeepSeek-V4 MXFP4 expert weight read as bf16 (docs/formats.md §3.7): packed I8 [M, N/2] (two e2m1 codes per byte,
 * low nibble first) and an F8_E8M0 scale [M, N/32] (one per 32 consecutive inputs of a row); element (i, j) is
 * {@code bf16(e2m1 · 2^(s−127))}, an exact product. A non-finite result (a NaN scale, or 6 · 2^127) is refused.
 */
public final class Mxfp4Dequant implements ComputedSource {
  private static final long serialVersionUID = 1L;
  /** Inputs per scale. */
  public static final int GROUP = 32;

  public final TensorLocation packed;
  public final TensorLocation scale;

  public Mxfp4Dequant(TensorLocation packed, TensorLocation scale) {
    this.packed = Objects.requireNonNull(packed);
    this.scale = Objects.requireNonNull(scale);
  }

  /** The bf16 tensor [M, 2·Np] this reads as, after checking the dtypes and the scale's shape. */
  public TensorLocation asBf16() throws CheckpointFormatException {
    Shape p = packed.shape();
    if (packed.dtype() != DType.I8 || p.rank() != 2) {
      throw new CheckpointFormatException(packed.file(), "Mxfp4", "tensor \"" + packed.name() + "\" is "
          + packed.dtype() + p + ", not an MXFP4 matrix (I8, two values per byte)");
    }
    long cols = 2 * p.dim(1);
    if (scale.dtype() != DType.F8_E8M0 || cols % GROUP != 0 || scale.shape().rank() != 2
        || scale.shape().dim(0) != p.dim(0) || scale.shape().dim(1) != cols / GROUP) {
      throw new CheckpointFormatException(scale.file(), "Mxfp4", "scale \"" + scale.name() + "\" " + scale.dtype()
          + scale.shape() + " does not fit MXFP4 " + packed.name() + " " + p + ": it needs F8_E8M0 [" + p.dim(0)
          + ", " + cols + "/" + GROUP + "]");
    }
    return new TensorLocation(packed.name(), packed.file(), DType.BF16, Shape.of(p.dim(0), cols), 0).computedBy(this);
  }

  @Override
  public RangeReader open(TensorLocation self) throws IOException {
    return new Reader();
  }

  /**
   * Any byte range of the bf16 view. Element e of the flat [M, N] view is nibble e mod 2 of packed byte e / 2, and its
   * scale is flat scale e / 32 (N is a multiple of 32), so a range needs one span of each.
   */
  private final class Reader implements RangeReader {
    private final RangeReader codes = CheckpointFiles.open(packed.file());
    private final RangeReader scales = CheckpointFiles.open(scale.file());

    private Reader() throws IOException {}

    @Override
    public long size() {
      return packed.shape().numel() * 4;
    }

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      int length = dst.remaining();
      if (offset % 2 != 0 || length % 2 != 0 || offset + length > size()) {
        throw new IOException(packed.name() + ": dequantised read [" + offset + ", +" + length + ") is outside the "
            + "tensor or not element aligned");
      }
      if (length == 0) {
        return;
      }
      long first = offset / 2;
      int n = length / 2;
      long last = first + n - 1;
      int nCodes = (int) (last / 2 - first / 2 + 1);
      int nScales = (int) (last / GROUP - first / GROUP + 1);
      byte[] codeBytes = Scratch.bytes(Scratch.CODES, nCodes);
      byte[] scaleBytes = Scratch.bytes(Scratch.SCALES, nScales);
      codes.readFully(packed.offset() + first / 2, ByteBuffer.wrap(codeBytes, 0, nCodes));
      scales.readFully(scale.offset() + first / GROUP, ByteBuffer.wrap(scaleBytes, 0, nScales));
      ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      int pos = dst.position();
      long codeBase = first / 2;
      long scaleBase = first / GROUP;
      int k = 0;
      if ((first & 1) == 1) { // a range starting on a high nibble
        out.putShort(pos, single(first, codeBytes[0] & 0xFF, scaleBytes[0] & 0xFF));
        pos += 2;
        k++;
      }
      // whole bytes, a scale group (16 bytes) at a time: one lookup gives both nibbles' bf16 values
      while (n - k >= 2) {
        long e = first + k;
        int s = scaleBytes[(int) ((e >> 5) - scaleBase)] & 0xFF;
        int pairs = (int) Math.min(n - k, GROUP - (e & (GROUP - 1))) / 2;
        int b = (int) ((e >> 1) - codeBase);
        int table = s << 8;
        if (s <= E8m0Tables.FP4_FINITE_SCALES) { // every product of this scale is finite: no check per byte
          for (int j = 0; j < pairs; j++, pos += 4) {
            out.putInt(pos, E8m0Tables.FP4_PAIR[table | codeBytes[b + j] & 0xFF]);
          }
        } else {
          for (int j = 0; j < pairs; j++, pos += 4) {
            int at = table | codeBytes[b + j] & 0xFF;
            if (!E8m0Tables.FP4_PAIR_FINITE[at]) {
              refuse(e + 2L * j, s);
            }
            out.putInt(pos, E8m0Tables.FP4_PAIR[at]);
          }
        }
        k += 2 * pairs;
      }
      if (k < n) { // a range ending on a low nibble
        long e = first + k;
        out.putShort(pos, single(e, codeBytes[(int) ((e >> 1) - codeBase)] & 0xFF,
            scaleBytes[(int) ((e >> 5) - scaleBase)] & 0xFF));
      }
      dst.position(dst.limit());
    }

    /** Element {@code e} alone, from its byte and scale code. */
    private short single(long e, int b, int s) throws CheckpointFormatException {
      int at = s * 16 + ((e & 1) == 0 ? b & 0xF : b >> 4);
      if (!E8m0Tables.FP4_FINITE[at]) {
        refuse(e, s);
      }
      return E8m0Tables.FP4[at];
    }

    /** Refuses a non-finite result at or after element {@code e} of its byte pair (named by row and column). */
    private void refuse(long e, int s) throws CheckpointFormatException {
      long cols = 2 * packed.shape().dim(1);
      throw new CheckpointFormatException(scale.file(), "Mxfp4", "MXFP4 " + packed.name() + " [" + e / cols + ", "
          + e % cols + "] dequantises to a non-finite value (scale \"" + scale.name() + "\" code " + s + ", 2^"
          + (s - 127) + "); a weight must be finite");
    }

    @Override
    public void close() throws IOException {
      codes.close();
      scales.close();
    }
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Mxfp4Dequant d && packed.equals(d.packed) && scale.equals(d.scale);
  }

  @Override
  public int hashCode() {
    return Objects.hash(packed, scale);
  }
}
