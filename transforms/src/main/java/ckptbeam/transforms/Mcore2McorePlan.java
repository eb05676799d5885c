package ckptbeam.transforms;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * mcore → mcore in one pass: the target layout's rank files, each tensor described directly as slices of the source
 * layout's rank-file tensors. It composes two plans: the target's HF → mcore plan says which HF regions each target
 * tensor holds; the source's mcore → HF plan says which source rank-file regions each HF tensor is tiled from. A
 * target slice of an HF tensor becomes the pieces of the source regions it overlaps, cut into bands of equal height
 * and transposed as both plans say (two transpositions cancel). The HF form is never written or held, and the
 * result is byte for byte that of mcore2hf followed by hf2mcore.
 */
public final class Mcore2McorePlan implements ConversionPlan {
  private static final long serialVersionUID = 1L;

  private final Mcore2HfPlan source;
  private final Hf2McorePlan target;

  @Override
  public ModelConfig modelConfig() {
    return target.config();
  }
  private transient Map<String, AssembledTensor> hf;
  private transient Map<String, Shape> sourceShapes;

  /**
   * @param source the mcore → HF plan of the layout the checkpoint was written with
   * @param target the HF → mcore plan of the new layout, over the config mcore → HF would write
   */
  public Mcore2McorePlan(Mcore2HfPlan source, Hf2McorePlan target) {
    this.source = source;
    this.target = target;
  }

  public Mcore2HfPlan source() {
    return source;
  }

  public Hf2McorePlan target() {
    return target;
  }

  @Override
  public List<String> targets() {
    return target.targets();
  }

  @Override
  public Map<String, Shape> sourcesOf(String file) {
    Map<String, Shape> shapes = sourceShapes();
    Map<String, Shape> out = new LinkedHashMap<>();
    for (List<AssembledTensor> chunk : contents(target.rankFile(file)).values()) {
      for (AssembledTensor t : chunk) {
        t.sources().forEach(s -> out.put(s, shapes.get(s)));
      }
    }
    return out;
  }

  @Override
  public WrittenFile write(String file, Map<String, TensorLocation> sources, String saveDir, PipelineOptions storage)
      throws IOException {
    RankFile rank = target.rankFile(file);
    return RankFileWriter.write(target, rank, contents(rank), sources, saveDir, storage);
  }

  /** A target rank file's model mappings, every tensor composed onto source rank-file tensors. */
  public Map<String, List<AssembledTensor>> contents(RankFile f) {
    Map<String, List<AssembledTensor>> out = new LinkedHashMap<>();
    target.contents(f).forEach((chunk, tensors) -> {
      List<AssembledTensor> composed = new ArrayList<>();
      tensors.forEach(t -> composed.add(compose(t)));
      out.put(chunk, composed);
    });
    return out;
  }

  private Map<String, Shape> sourceShapes() {
    if (sourceShapes == null) {
      sourceShapes = source.sourceShapes();
    }
    return sourceShapes;
  }

  /** HF tensor name → how it is tiled from source rank-file tensors. */
  private Map<String, AssembledTensor> hf() {
    if (hf == null) {
      hf = new LinkedHashMap<>();
      source.files().values().forEach(ts -> ts.forEach(t -> hf.put(t.key(), t)));
    }
    return hf;
  }

  /** The regions of an HF tensor, band by band (rows), left to right. */
  private List<List<HfRegion>> regions(String name) {
    AssembledTensor h = hf().get(name);
    if (h == null) {
      throw new IllegalArgumentException("the target layout needs HF tensor \"" + name + "\", which the source "
          + "checkpoint's layout does not hold (check --mtp-num-layers and the layers of both layouts)");
    }
    List<List<HfRegion>> out = new ArrayList<>();
    long row = 0;
    for (Band b : h.bands()) {
      List<HfRegion> band = new ArrayList<>();
      long col = 0;
      for (SourceSlice s : b.slices()) {
        band.add(new HfRegion(row, b.height(), col, s.outputWidth(), s));
        col += s.outputWidth();
      }
      out.add(band);
      row += b.height();
    }
    return out;
  }

  /** The target tensor with every slice of an HF tensor replaced by the pieces of source tensors it covers. */
  AssembledTensor compose(AssembledTensor t) {
    List<Band> bands = new ArrayList<>();
    for (Band b : t.bands()) {
      // cut the band where any of its slices crosses a boundary between source regions
      TreeSet<Long> cuts = new TreeSet<>(List.of(0L, b.height()));
      for (SourceSlice s : b.slices()) {
        cuts.addAll(cuts(s, regions(s.source())));
      }
      Long from = null;
      for (long to : cuts) {
        if (from != null) {
          List<SourceSlice> pieces = new ArrayList<>();
          for (SourceSlice s : b.slices()) {
            pieces.addAll(pieces(s, regions(s.source()), from, to));
          }
          bands.add(new Band(pieces));
        }
        from = to;
      }
    }
    return new AssembledTensor(t.key(), t.shape(), bands);
  }

  /** Output rows of slice {@code s} (0 … its height) at which it moves from one source region to the next. */
  private static List<Long> cuts(SourceSlice s, List<List<HfRegion>> regions) {
    List<Long> out = new ArrayList<>();
    long r0 = s.rowStart();
    long r1 = r0 + s.rowCount();
    long c0 = s.colStart();
    long c1 = c0 + s.colCount();
    for (List<HfRegion> band : regions) {
      HfRegion first = band.get(0);
      if (first.row() + first.rows() <= r0 || first.row() >= r1) {
        continue;
      }
      if (!s.isTransposed()) {
        // output rows are HF rows: cut at the HF row bands
        if (first.row() > r0) {
          out.add(first.row() - r0);
        }
      } else {
        // output rows are HF columns: cut at the column boundaries of every band the slice crosses
        for (HfRegion g : band) {
          if (g.col() > c0 && g.col() < c1) {
            out.add(g.col() - c0);
          }
        }
      }
    }
    return out;
  }

  /**
   * The pieces of slice {@code s} for its output rows {@code [u, v)}, left to right: each the overlap of the slice
   * with one source region, as a slice of that region's source tensor.
   */
  private static List<SourceSlice> pieces(SourceSlice s, List<List<HfRegion>> regions, long u, long v) {
    // the HF rectangle of output rows [u, v)
    long r0 = s.isTransposed() ? s.rowStart() : s.rowStart() + u;
    long r1 = s.isTransposed() ? s.rowStart() + s.rowCount() : s.rowStart() + v;
    long c0 = s.isTransposed() ? s.colStart() + u : s.colStart();
    long c1 = s.isTransposed() ? s.colStart() + v : s.colStart() + s.colCount();
    List<SourceSlice> out = new ArrayList<>();
    // left to right in the output: HF columns when not transposed (one band holds the rows), HF rows when transposed
    for (List<HfRegion> band : regions) {
      for (HfRegion g : band) {
        long a = Math.max(r0, g.row());
        long b = Math.min(r1, g.row() + g.rows());
        long c = Math.max(c0, g.col());
        long d = Math.min(c1, g.col() + g.cols());
        if (a < b && c < d) {
          out.add(piece(g, a, b, c, d, s.isTransposed()));
        }
      }
    }
    return out;
  }

  /** HF rows {@code [a, b)}, columns {@code [c, d)} inside region {@code g}, as a slice of g's source tensor. */
  private static SourceSlice piece(HfRegion g, long a, long b, long c, long d, boolean transposed) {
    SourceSlice f = g.from();
    if (!f.isTransposed()) {
      return new SourceSlice(f.source(), f.rowStart() + (a - g.row()), b - a, f.colStart() + (c - g.col()), d - c,
          transposed, viewCols(f));
    }
    // the region is the transpose of a window of the source: HF (i, j) is source (j, i)
    return new SourceSlice(f.source(), f.rowStart() + (c - g.col()), d - c, f.colStart() + (a - g.row()), b - a,
        !transposed, viewCols(f));
  }

  private static long viewCols(SourceSlice f) {
    return f.viewCols();
  }
}
