package ckptbeam.io.tensor;

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
}
