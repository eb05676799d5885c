package ckptbeam.io.tensor;

import java.io.Serializable;
import java.util.Arrays;

/** An immutable tensor shape. Element counts are checked for overflow: shapes come from untrusted headers. */
public final class Shape implements Serializable {
  private static final long serialVersionUID = 1L;

  private final long[] dims;

  private Shape(long[] dims) {
    this.dims = dims;
  }

  public static Shape of(long... dims) {
    for (long d : dims) {
      if (d < 0) {
        throw new IllegalArgumentException("negative dimension in shape " + Arrays.toString(dims));
      }
    }
    Shape s = new Shape(dims.clone());
    s.numel(); // reject overflowing shapes up front
    return s;
  }

  public int rank() {
    return dims.length;
  }

  public long dim(int i) {
    return dims[i];
  }

  public long[] dims() {
    return dims.clone();
  }

  /** Number of elements; throws {@link ArithmeticException} when it does not fit in a long. */
  public long numel() {
    long n = 1;
    for (long d : dims) {
      n = Math.multiplyExact(n, d);
    }
    return n;
  }

  /** Bytes of a contiguous tensor of this shape and the given dtype. */
  public long byteSize(DType dtype) {
    return Math.multiplyExact(numel(), dtype.size());
  }

  /** Row-major strides in elements. */
  public long[] contiguousStrides() {
    long[] strides = new long[dims.length];
    long s = 1;
    for (int i = dims.length - 1; i >= 0; i--) {
      strides[i] = s;
      s *= Math.max(dims[i], 1);
    }
    return strides;
  }

  /** Rows when viewed as a matrix: the first dimension, or 1 for a scalar. */
  public long rows() {
    return dims.length == 0 ? 1 : dims[0];
  }

  /** Columns when viewed as a matrix: the product of every dimension after the first. */
  public long cols() {
    long c = 1;
    for (int i = 1; i < dims.length; i++) {
      c *= dims[i];
    }
    return c;
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof Shape && Arrays.equals(dims, ((Shape) o).dims);
  }

  @Override
  public int hashCode() {
    return Arrays.hashCode(dims);
  }

  @Override
  public String toString() {
    return Arrays.toString(dims);
  }
}
