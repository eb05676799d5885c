package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.BFloat16;
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
    private byte[] codeBytes = new byte[0];
    private byte[] scaleBytes = new byte[0];

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
      if (codeBytes.length < nCodes) {
        codeBytes = new byte[nCodes];
      }
      if (scaleBytes.length < nScales) {
        scaleBytes = new byte[nScales];
      }
      codes.readFully(packed.offset() + first / 2, ByteBuffer.wrap(codeBytes, 0, nCodes));
      scales.readFully(scale.offset() + first / GROUP, ByteBuffer.wrap(scaleBytes, 0, nScales));
      ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      int pos = dst.position();
      for (int k = 0; k < n; k++, pos += 2) {
        long e = first + k;
        int b = codeBytes[(int) (e / 2 - first / 2)] & 0xFF;
        float x = Float4E2M1.toFloat((e & 1) == 0 ? b : b >> 4);
        float y = x * Float8E8M0.toFloat(scaleBytes[(int) (e / GROUP - first / GROUP)]);
        if (!Float.isFinite(y)) {
          long cols = 2 * packed.shape().dim(1);
          throw new CheckpointFormatException(scale.file(), "Mxfp4", "MXFP4 " + packed.name() + " [" + e / cols + ", "
              + e % cols + "] dequantises to " + y + " (scale \"" + scale.name() + "\" code "
              + (scaleBytes[(int) (e / GROUP - first / GROUP)] & 0xFF) + "); a weight must be finite");
        }
        out.putShort(pos, BFloat16.fromFloat(y));
      }
      dst.position(dst.limit());
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
