package ckptbeam.io.tensor;

import java.util.Objects;

/** A tensor to be written: its name, dtype and shape, and how to produce its bytes. */
public final class TensorSpec {
  private final String name;
  private final DType dtype;
  private final Shape shape;
  private final TensorBytes bytes;

  public TensorSpec(String name, DType dtype, Shape shape, TensorBytes bytes) {
    this.name = Objects.requireNonNull(name);
    this.dtype = Objects.requireNonNull(dtype);
    this.shape = Objects.requireNonNull(shape);
    this.bytes = Objects.requireNonNull(bytes);
  }

  public String name() {
    return name;
  }

  public DType dtype() {
    return dtype;
  }

  public Shape shape() {
    return shape;
  }

  public long byteSize() {
    return shape.byteSize(dtype);
  }

  public TensorBytes bytes() {
    return bytes;
  }
}
