package ckptbeam.io.compute;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Objects;

/**
 * An NF4-quantised weight read back in its original dtype (docs/mapping.md §7.7): Format N takes the low nibble first and
 * code {@code nibble XOR 8} times the block's absmax; Format C the high nibble first, with absmax either float32 or,
 * nested, {@code Dmap[q] · absmax2 + offset}. Lossy by nature: the values are the code points, not the weights.
 */
public final class Nf4Dequant implements ComputedSource {
  private static final long serialVersionUID = 1L;

  public final Nf4.Format format;
  public final TensorLocation packed;
  public final TensorLocation absmax;
  /** Format C nested statistics: float32 absmax of each 256-block of absmax values, or null. */
  public final TensorLocation nestedAbsmax;
  public final float nestedOffset;

  public Nf4Dequant(Nf4.Format format, TensorLocation packed, TensorLocation absmax, TensorLocation nestedAbsmax,
      float nestedOffset) {
    this.format = Objects.requireNonNull(format);
    this.packed = Objects.requireNonNull(packed);
    this.absmax = Objects.requireNonNull(absmax);
    this.nestedAbsmax = nestedAbsmax;
    this.nestedOffset = nestedOffset;
  }

  /** The dequantised tensor, of {@code dtype} and {@code shape} (from the quant state). */
  public TensorLocation as(String name, DType dtype, Shape shape) throws CheckpointFormatException {
    long blocks = (shape.numel() + Nf4.BLOCK - 1) / Nf4.BLOCK;
    if (packed.shape().numel() != (shape.numel() + 1) / 2 || absmax.shape().numel() != blocks) {
      throw new CheckpointFormatException(packed.file(), "Nf4", "\"" + name + "\": packed data " + packed.shape()
          + " and absmax " + absmax.shape() + " do not fit the quantised shape " + shape);
    }
    if (dtype != DType.BF16 && dtype != DType.F32) {
      throw new CheckpointFormatException(packed.file(), "Nf4", "\"" + name + "\": NF4 of a " + dtype + " weight");
    }
    return new TensorLocation(name, packed.file(), dtype, shape, 0).computedBy(this);
  }

  @Override
  public RangeReader open(TensorLocation self) throws IOException {
    return new Reader(self);
  }

  private final class Reader implements RangeReader {
    private final TensorLocation self;
    private final RangeReader data;
    private final RangeReader scales;
    private final RangeReader nested;
    private final float[] dmap = Nf4.dynamicMap();

    Reader(TensorLocation self) throws IOException {
      this.self = self;
      this.data = CheckpointFiles.open(packed.file());
      this.scales = CheckpointFiles.open(absmax.file());
      this.nested = nestedAbsmax == null ? null : CheckpointFiles.open(nestedAbsmax.file());
    }

    @Override
    public long size() {
      return self.byteSize();
    }

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      int es = self.dtype().size();
      int length = dst.remaining();
      if (offset % es != 0 || length % es != 0 || offset + length > size()) {
        throw new IOException(self.name() + ": NF4 read [" + offset + ", +" + length + ") is outside the tensor");
      }
      long first = offset / es;
      int n = length / es;
      long byte0 = first / 2;
      int bytes = (int) ((first + n + 1) / 2 - byte0);
      ByteBuffer codes = ByteBuffer.allocate(bytes);
      data.readFully(packed.offset() + byte0, codes);
      ByteBuffer out = dst.duplicate().order(ByteOrder.LITTLE_ENDIAN);
      int pos = dst.position();
      long block = -1;
      float scale = 0;
      for (int k = 0; k < n; k++) {
        long e = first + k;
        if (e / Nf4.BLOCK != block) {
          block = e / Nf4.BLOCK;
          scale = blockAbsmax(block);
        }
        int b = codes.get((int) (e / 2 - byte0)) & 0xFF;
        int nibble = format == Nf4.Format.NPU ? (e % 2 == 0 ? b & 15 : b >> 4) : (e % 2 == 0 ? b >> 4 : b & 15);
        int idx = format == Nf4.Format.NPU ? nibble ^ 8 : nibble;
        float v = Nf4.CODE[idx] * scale;
        if (es == 2) {
          out.putShort(pos, BFloat16.fromFloat(v));
        } else {
          out.putFloat(pos, v);
        }
        pos += es;
      }
      dst.position(dst.limit());
    }

    private float blockAbsmax(long block) throws IOException {
      if (nestedAbsmax == null) {
        int es = absmax.dtype().size();
        ByteBuffer b = ByteBuffer.allocate(es).order(ByteOrder.LITTLE_ENDIAN);
        scales.readFully(absmax.offset() + block * es, b);
        return es == 2 ? BFloat16.toFloat(b.getShort(0)) : b.getFloat(0);
      }
      ByteBuffer q = ByteBuffer.allocate(1);
      scales.readFully(absmax.offset() + block, q);
      ByteBuffer a2 = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
      nested.readFully(nestedAbsmax.offset() + (block / Nf4.NESTED_BLOCK) * 4, a2);
      return dmap[q.get(0) & 0xFF] * a2.getFloat(0) + nestedOffset;
    }

    @Override
    public void close() throws IOException {
      data.close();
      scales.close();
      if (nested != null) {
        nested.close();
      }
    }
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof Nf4Dequant)) {
      return false;
    }
    Nf4Dequant d = (Nf4Dequant) o;
    return format == d.format && packed.equals(d.packed) && absmax.equals(d.absmax)
        && Objects.equals(nestedAbsmax, d.nestedAbsmax) && Float.compare(nestedOffset, d.nestedOffset) == 0;
  }

  @Override
  public int hashCode() {
    return Objects.hash(format, packed, absmax, nestedAbsmax, nestedOffset);
  }
}
