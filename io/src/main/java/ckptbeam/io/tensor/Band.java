package ckptbeam.io.tensor;

import java.util.ArrayList;
import java.util.List;

/** Output rows made by putting source slices of equal output height side by side. */
public final class Band {
  private final List<SourceSlice> slices;

  public Band(List<SourceSlice> slices) {
    if (slices.isEmpty()) {
      throw new IllegalArgumentException("a band needs at least one slice");
    }
    long h = slices.get(0).outputHeight();
    for (SourceSlice s : slices) {
      if (s.outputHeight() != h) {
        throw new IllegalArgumentException("slices of a band differ in height: " + slices);
      }
    }
    this.slices = List.copyOf(slices);
  }

  public static Band of(SourceSlice... slices) {
    return new Band(List.of(slices));
  }

  public List<SourceSlice> slices() {
    return slices;
  }

  public long height() {
    return slices.get(0).outputHeight();
  }

  public long width() {
    long w = 0;
    for (SourceSlice s : slices) {
      w += s.outputWidth();
    }
    return w;
  }

  public long numel() {
    return height() * width();
  }

  /**
   * The same band with neighbouring slices that are one window of their source joined: plain (not transposed)
   * slices of one source, over the same rows and matrix view, whose columns continue one another. Such pieces arise
   * when a layout keeps what another one split (gate and up halves of a grouped {@code weight1} at unchanged tp);
   * joined, they are read as one range (a full-width window is one contiguous block) instead of one read per row
   * and piece.
   */
  public Band coalesced() {
    List<SourceSlice> out = new ArrayList<>();
    for (SourceSlice s : slices) {
      SourceSlice last = out.isEmpty() ? null : out.get(out.size() - 1);
      if (last != null && !last.isTransposed() && !s.isTransposed() && last.source().equals(s.source())
          && last.rowStart() == s.rowStart() && last.rowCount() == s.rowCount() && last.viewCols() == s.viewCols()
          && last.colStart() + last.colCount() == s.colStart()) {
        out.set(out.size() - 1, new SourceSlice(s.source(), s.rowStart(), s.rowCount(), last.colStart(),
            last.colCount() + s.colCount(), false, s.viewCols()));
      } else {
        out.add(s);
      }
    }
    return out.size() == slices.size() ? this : new Band(out);
  }
}
