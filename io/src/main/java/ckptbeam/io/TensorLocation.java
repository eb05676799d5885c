package ckptbeam.io;

import java.io.Serializable;
import java.util.Objects;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.apache.beam.sdk.coders.SerializableCoder;

/**
 * Where the bytes of one stored tensor are: a contiguous, row-major byte range of a file. This small description,
 * never the bytes, is what travels through a pipeline.
 */
@DefaultCoder(SerializableCoder.class)
public final class TensorLocation implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String name;
  private final String file;
  private final DType dtype;
  private final Shape shape;
  private final long offset;
  private final LoraMerge merge;
  private final Fp8Dequant dequant;

  public TensorLocation(String name, String file, DType dtype, Shape shape, long offset) {
    this(name, file, dtype, shape, offset, null, null);
  }

  private TensorLocation(String name, String file, DType dtype, Shape shape, long offset, LoraMerge merge,
      Fp8Dequant dequant) {
    this.name = Objects.requireNonNull(name);
    this.file = Objects.requireNonNull(file);
    this.dtype = Objects.requireNonNull(dtype);
    this.shape = Objects.requireNonNull(shape);
    this.offset = offset;
    this.merge = merge;
    this.dequant = dequant;
  }

  /** The same tensor with a LoRA delta added as it is read. */
  public TensorLocation withMerge(LoraMerge merge) {
    return new TensorLocation(name, file, dtype, shape, offset, merge, dequant);
  }

  /** A virtual bf16 tensor computed from FP8 bytes and block scales as it is read. */
  TensorLocation withDequant(Fp8Dequant dequant) {
    return new TensorLocation(name, file, dtype, shape, offset, merge, dequant);
  }

  /** The FP8 dequantisation that produces this tensor's bytes, or null. */
  public Fp8Dequant dequant() {
    return dequant;
  }

  /** Whether reading this tensor computes its bytes (LoRA merge, FP8 dequantisation) instead of copying them. */
  public boolean isComputed() {
    return merge != null || dequant != null;
  }

  /** The LoRA delta added when reading, or null. */
  public LoraMerge merge() {
    return merge;
  }

  /** The tensor's name in its checkpoint. */
  public String name() {
    return name;
  }

  /** The file holding the bytes (a local path or a URL). */
  public String file() {
    return file;
  }

  public DType dtype() {
    return dtype;
  }

  public Shape shape() {
    return shape;
  }

  /** Absolute byte offset of the first element in {@link #file()}. */
  public long offset() {
    return offset;
  }

  public long byteSize() {
    return shape.byteSize(dtype);
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof TensorLocation)) {
      return false;
    }
    TensorLocation t = (TensorLocation) o;
    return name.equals(t.name) && file.equals(t.file) && dtype == t.dtype && shape.equals(t.shape)
        && offset == t.offset && Objects.equals(merge, t.merge) && Objects.equals(dequant, t.dequant);
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, file, dtype, shape, offset, merge, dequant);
  }

  @Override
  public String toString() {
    return name + " " + dtype + shape + " @" + file + ":" + offset + (merge == null ? "" : " +LoRA")
        + (dequant == null ? "" : " from FP8");
  }
}
