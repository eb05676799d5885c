package ckptbeam.io.tensor;

import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/**
 * A target tensor described by how to build it from source tensors: its row-major element buffer is the bands
 * stacked top to bottom. The shape may relabel that buffer (grouped-GEMM {@code weight1}, docs/mapping.md §3.7.2).
 */
public final class AssembledTensor {
  private final String key;
  private final Shape shape;
  private final List<Band> bands;

  public AssembledTensor(String key, Shape shape, List<Band> bands) {
    this.key = key;
    this.shape = shape;
    this.bands = List.copyOf(bands);
    long n = 0;
    for (Band b : bands) {
      n += b.numel();
    }
    if (n != shape.numel()) {
      throw new IllegalArgumentException(key + ": bands hold " + n + " elements but shape " + shape + " needs "
          + shape.numel());
    }
  }

  public String key() {
    return key;
  }

  public Shape shape() {
    return shape;
  }

  public List<Band> bands() {
    return bands;
  }

  /** The names of the source tensors used, in first-use order. */
  public Set<String> sources() {
    Set<String> out = new LinkedHashSet<>();
    for (Band b : bands) {
      for (SourceSlice s : b.slices()) {
        out.add(s.source());
      }
    }
    return out;
  }

  @Override
  public String toString() {
    return key + shape + " <- " + bands.size() + " band(s)";
  }
}
