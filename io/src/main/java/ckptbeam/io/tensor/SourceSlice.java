package ckptbeam.io.tensor;

import java.util.Objects;

/**
 * A rectangular window of one source tensor viewed as a matrix (dim 0 by the product of the other dims; a 1-D
 * tensor of n elements is n rows of 1), optionally transposed. Output height is the window's rows (columns when
 * transposed); output width is its columns (rows when transposed).
 */
public final class SourceSlice {
  private final String source;
  private final long rowStart;
  private final long rowCount;
  private final long colStart;
  private final long colCount;
  private final boolean transposed;
  private final long viewCols;

  public SourceSlice(String source, long rowStart, long rowCount, long colStart, long colCount, boolean transposed) {
    this(source, rowStart, rowCount, colStart, colCount, transposed, 0);
  }

  /**
   * @param viewCols when positive, the source's buffer is viewed as a matrix of that many columns instead of its
   *     stored shape's (grouped-GEMM {@code weight1} is stored as a relabelled buffer, docs/mapping.md §3.7.2)
   */
  public SourceSlice(String source, long rowStart, long rowCount, long colStart, long colCount, boolean transposed,
      long viewCols) {
    if (rowStart < 0 || rowCount < 0 || colStart < 0 || colCount < 0) {
      throw new IllegalArgumentException("negative slice bounds for " + source);
    }
    this.source = Objects.requireNonNull(source);
    this.rowStart = rowStart;
    this.rowCount = rowCount;
    this.colStart = colStart;
    this.colCount = colCount;
    this.transposed = transposed;
    this.viewCols = viewCols;
  }

  /** Rows {@code [start, start+count)}, all {@code cols} columns. */
  public static SourceSlice rows(String source, long start, long count, long cols) {
    return new SourceSlice(source, start, count, 0, cols, false);
  }

  /** The whole tensor of {@code rows} by {@code cols}. */
  public static SourceSlice whole(String source, long rows, long cols) {
    return rows(source, 0, rows, cols);
  }

  /** All {@code rows} rows, columns {@code [start, start+count)}. */
  public static SourceSlice cols(String source, long rows, long start, long count) {
    return new SourceSlice(source, 0, rows, start, count, false);
  }

  /** The same window, transposed. */
  public SourceSlice transposed() {
    return new SourceSlice(source, rowStart, rowCount, colStart, colCount, !transposed, viewCols);
  }

  /** Columns of the matrix view of a source of the given shape. */
  public long sourceCols(Shape shape) {
    return viewCols > 0 ? viewCols : shape.cols();
  }

  /** Rows of the matrix view of a source of the given shape. */
  public long sourceRows(Shape shape) {
    return viewCols > 0 ? shape.numel() / viewCols : shape.rows();
  }

  /** The columns of the source's matrix view, or 0 for its stored shape's. */
  public long viewCols() {
    return viewCols;
  }

  /** The name of the source tensor. */
  public String source() {
    return source;
  }

  public long rowStart() {
    return rowStart;
  }

  public long rowCount() {
    return rowCount;
  }

  public long colStart() {
    return colStart;
  }

  public long colCount() {
    return colCount;
  }

  public boolean isTransposed() {
    return transposed;
  }

  public long outputHeight() {
    return transposed ? colCount : rowCount;
  }

  public long outputWidth() {
    return transposed ? rowCount : colCount;
  }

  public long numel() {
    return rowCount * colCount;
  }

  /** Whether the window fits inside a source of this shape (in its matrix view). */
  public boolean fitsIn(Shape shape) {
    if (viewCols > 0 && shape.numel() % viewCols != 0) {
      return false;
    }
    return rowStart + rowCount <= sourceRows(shape) && colStart + colCount <= sourceCols(shape);
  }

  @Override
  public String toString() {
    return source + "[" + rowStart + ":" + (rowStart + rowCount) + ", " + colStart + ":" + (colStart + colCount) + "]"
        + (transposed ? "ᵀ" : "");
  }
}
