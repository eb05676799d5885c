package ckptbeam.io.tensor;

import ckptbeam.io.compute.ComputedSource;
import java.io.Serializable;
import java.util.Objects;

/**
 * Where the bytes of one stored tensor are: a contiguous, row-major byte range of a file. This small description,
 * never the bytes, is what travels through a pipeline (encoded field by field by the transforms' coders).
 */
public final class TensorLocation implements Serializable {
  private static final long serialVersionUID = 1L;

  private final String name;
  private final String file;
  private final DType dtype;
  private final Shape shape;
  private final long offset;
  private final ComputedSource computed;

  public TensorLocation(String name, String file, DType dtype, Shape shape, long offset) {
    this(name, file, dtype, shape, offset, null);
  }

  private TensorLocation(String name, String file, DType dtype, Shape shape, long offset, ComputedSource computed) {
    this.name = Objects.requireNonNull(name);
    this.file = Objects.requireNonNull(file);
    this.dtype = Objects.requireNonNull(dtype);
    this.shape = Objects.requireNonNull(shape);
    this.offset = offset;
    this.computed = computed;
  }

  /** The same tensor, its bytes computed as they are read (a LoRA merge, a dequantisation). */
  public TensorLocation computedBy(ComputedSource computed) {
    if (this.computed != null) {
      throw new IllegalArgumentException(name + ": a tensor computed twice (e.g. LoRA merged into a quantised "
          + "base) is not supported");
    }
    return new TensorLocation(name, file, dtype, shape, offset, computed);
  }

  /** What computes this tensor's bytes, or null when they are read as stored. */
  public ComputedSource computed() {
    return computed;
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
        && offset == t.offset && Objects.equals(computed, t.computed);
  }

  @Override
  public int hashCode() {
    return Objects.hash(name, file, dtype, shape, offset, computed);
  }

  @Override
  public String toString() {
    return name + " " + dtype + shape + " @" + file + ":" + offset + (computed == null ? "" : " computed by "
        + computed.getClass().getSimpleName());
  }
}
