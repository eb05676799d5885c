package ckptbeam.transforms;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.transforms.TensorMapping.HeadRows;
import ckptbeam.transforms.TensorMapping.Part;
import ckptbeam.transforms.TensorMapping.Row;
import ckptbeam.transforms.TensorMapping.Source;
import ckptbeam.transforms.TensorMapping.Split;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * The HF → mcore plan: the rank files of a layout and, for each, the tensors it holds (in the reference's order,
 * docs/mapping.md §3.9) with how each is assembled from HF tensors (§3). Pure and deterministic: every worker that
 * needs a rank file's content recomputes it from the config and options, so only names and shapes travel.
 */
public final class Hf2McorePlan implements ConversionPlan {
  private static final long serialVersionUID = 1L;
  public static final int ITERATION = 1;
  public static final String TRACKER = McoreTracker.FILE_NAME;

  private final ModelConfig cfg;
  private final LayoutOptions opts;
  private transient LayerPlacement placement;
  private transient Map<Part, List<Row>> rowsByPart;
  private transient List<RankFile> rankFiles;
  private transient Map<String, RankFile> byTarget;
  private transient RankPlan lastPlan;

  /** @param opts options already {@link LayoutOptions#resolve resolved} against {@code cfg} */
  public Hf2McorePlan(ModelConfig cfg, LayoutOptions opts) {
    this.cfg = cfg;
    this.opts = opts;
  }

  public ModelConfig config() {
    return cfg;
  }

  @Override
  public ModelConfig modelConfig() {
    return cfg;
  }

  public LayoutOptions options() {
    return opts;
  }

  public LayerPlacement placement() {
    if (placement == null) {
      placement = LayerPlacement.compute(cfg, opts);
    }
    return placement;
  }

  /** The mapping rows of a part that apply to this config and layout, in order (computed once per plan). */
  List<Row> rows(Part part) {
    if (rowsByPart == null) {
      Map<Part, List<Row>> byPart = new EnumMap<>(Part.class);
      for (Part p : Part.values()) {
        byPart.put(p, TensorMapping.rows(p, cfg, opts));
      }
      rowsByPart = byPart;
    }
    return rowsByPart.get(part);
  }

  /** Every rank file of the layout, sorted by directory name. */
  public List<RankFile> rankFiles() {
    if (rankFiles == null) {
      List<RankFile> files = new ArrayList<>();
      for (int p = 0; p < opts.pp(); p++) {
        for (int e = 0; e < opts.ep(); e++) {
          for (int t = 0; t < opts.tp(); t++) {
            files.add(new RankFile(t, p, e, opts.pp(), opts.ep()));
          }
        }
      }
      files.sort(null);
      rankFiles = List.copyOf(files);
    }
    return rankFiles;
  }

  @Override
  public List<String> targets() {
    return new ArrayList<>(byTarget().keySet());
  }

  /** Target path → its rank file, in {@link #rankFiles} order. */
  private Map<String, RankFile> byTarget() {
    if (byTarget == null) {
      Map<String, RankFile> m = new LinkedHashMap<>();
      for (RankFile f : rankFiles()) {
        m.put(f.relativePath(ITERATION), f);
      }
      byTarget = m;
    }
    return byTarget;
  }

  @Override
  public Map<String, Shape> sourcesOf(String target) {
    return sourcesOf(rankFile(target));
  }

  @Override
  public WrittenFile write(String target, Map<String, TensorLocation> sources,
      String saveDir, PipelineOptions storage) throws IOException {
    return RankFileWriter.write(this, rankFile(target), sources, saveDir, storage);
  }

  @Override
  public List<AssembledTensor> tensorsOf(String target) {
    List<AssembledTensor> out = new ArrayList<>();
    contents(rankFile(target)).values().forEach(out::addAll);
    return out;
  }

  /** The rank file of a target path ({@code iter_0000001/mp_rank_00/model_optim_rng.pt}). */
  public RankFile rankFile(String target) {
    RankFile f = byTarget().get(target);
    if (f == null) {
      throw new IllegalArgumentException("not a rank file of this layout: " + target);
    }
    return f;
  }

  /** One rank file's model mappings and the HF tensors they read, built together in one pass. */
  public static final class RankPlan {
    final RankFile file;
    /** Key {@code model}, or {@code model0 … modelN} with virtual chunks → the tensors in order (read-only). */
    public final Map<String, List<AssembledTensor>> contents;
    /** The expected shape of every HF tensor read, in first-use order (read-only). */
    public final Map<String, Shape> sources;

    RankPlan(RankFile file, Map<String, List<AssembledTensor>> contents, Map<String, Shape> sources) {
      this.file = file;
      this.contents = Collections.unmodifiableMap(contents);
      this.sources = Collections.unmodifiableMap(sources);
    }
  }


  /**
   * One rank file's plan. The last one is kept: a target's sources, tensors and writer ask for the same rank file one
   * after another (a plan is used by one thread at a time).
   */
  public RankPlan plan(RankFile f) {
    RankPlan last = lastPlan;
    if (last != null && last.file.equals(f)) {
      return last;
    }
    Map<String, List<AssembledTensor>> contents = new LinkedHashMap<>();
    Map<String, Shape> sources = new LinkedHashMap<>();
    LayerPlacement lp = placement();
    for (int v = 0; v < lp.virtualChunks(); v++) {
      ChunkBuilder b = new ChunkBuilder(f.tpRank, f.epRank);
      contents.put(opts.hasVirtualChunks() ? "model" + v : "model", List.copyOf(b.build(lp.chunk(f.ppRank, v))));
      sources.putAll(b.sources);
    }
    RankPlan out = new RankPlan(f, contents, sources);
    lastPlan = out;
    return out;
  }

  /** The model mappings of one rank file: key {@code model}, or {@code model0 … modelN} with virtual chunks. */
  public Map<String, List<AssembledTensor>> contents(RankFile f) {
    return plan(f).contents;
  }

  /** The expected shape of every HF tensor one rank file reads, in first-use order. */
  public Map<String, Shape> sourcesOf(RankFile f) {
    return plan(f).sources;
  }

  /** Builds the ordered tensor list of one chunk for one (tp, ep) rank by walking {@link TensorMapping}. */
  private final class ChunkBuilder {
    private final int t;
    private final int r;
    private final McoreKeyNames keys = new McoreKeyNames(opts.keyNames());
    private final List<AssembledTensor> out = new ArrayList<>();
    final Map<String, Shape> sources = new LinkedHashMap<>();

    ChunkBuilder(int t, int r) {
      this.t = t;
      this.r = r;
    }

    List<AssembledTensor> build(LayerPlacement.Chunk c) {
      if (c.embedding) {
        global(Part.EMBEDDING);
      }
      if (c.finalNorm && placement().finalFirst()) {
        global(Part.FINAL);
      }
      for (int m = 0; m < c.mtp.size(); m++) {
        mtpLayer(m, c.mtp.get(m), c.mtp.get(c.mtp.size() - 1));
      }
      for (LayerPlacement.Placed l : c.layers) {
        transformerLayer(keys.layerPrefix(l.local()), l.hfIndex());
      }
      if (c.finalNorm && !placement().finalFirst()) {
        global(Part.FINAL);
      }
      return out;
    }

    private void global(Part part) {
      for (Row row : rows(part)) {
        emit(row, keys.key(row.logical()), -1, -1);
      }
    }

    private void mtpLayer(int m, int hf, int lastHf) {
      for (Row row : rows(Part.MTP_INPUT)) {
        emit(row, keys.mtp(row.logical(), m), hf, -1);
      }
      // The stage's copy of the embedding (§3.8). In the current names every MTP layer would write the same key;
      // the reference's dict then keeps one copy, so with several MTP layers we write the first layer's (V3). V4's
      // converter keeps the first position but the last layer's value (V4 spec §8 #36; matters for Base only).
      for (Row row : rows(Part.MTP_EMBEDDING)) {
        boolean sharedKey = !keys.template(row.logical()).contains("{m}");
        if (opts.pp() > 1 && (m == 0 || !sharedKey)) {
          emit(row, keys.mtp(row.logical(), m), cfg.v4() && sharedKey ? lastHf : hf, -1);
        }
      }
      transformerLayer(keys.mtp("mtp_layer", m), hf);
      for (Row row : rows(Part.MTP_OUTPUT)) {
        emit(row, keys.mtp(row.logical(), m), hf, -1);
      }
    }

    private void transformerLayer(String prefix, int hf) {
      layerPart(Part.ATTENTION, prefix, hf);
      if (hf < cfg.firstKDenseReplace) {
        layerPart(Part.DENSE_MLP, prefix, hf);
        return;
      }
      layerPart(Part.MOE, prefix, hf);
      if (opts.groupedGemm()) {
        layerPart(Part.GROUPED_EXPERTS, prefix, hf);
        return;
      }
      long local = cfg.routedExperts / opts.ep();
      for (int l = 0; l < local; l++) {
        for (Row row : rows(Part.EXPERT)) {
          emit(row, prefix + keys.expert(row.logical(), l), hf, r * local + l);
        }
      }
    }

    private void layerPart(Part part, String prefix, int hf) {
      for (Row row : rows(part)) {
        if (row.when().holdsForLayer(cfg, hf)) {
          emit(row, prefix + keys.key(row.logical()), hf, -1);
        }
      }
    }

    /** One tensor of a row: its HF sources in layer {@code hf} (and expert), split for this rank. */
    private void emit(Row row, String key, int hf, long expert) {
      if (row.split() == Split.GROUPED_W1 || row.split() == Split.GROUPED_W2) {
        groupedExperts(row, key, hf); // its sources are per local expert
        return;
      }
      List<String> names = new ArrayList<>();
      for (Source s : row.sources()) {
        names.add(source(s.hfName(cfg, hf, expert), s.shape(cfg, hf)));
      }
      String name = names.get(0);
      long[] dims = row.source().shape(cfg, hf);
      long rows = dims[0];
      long cols = dims.length > 1 ? dims[1] : 1;
      switch (row.split()) {
        case REPLICATED:
          emit(key, Shape.of(dims), List.of(Band.of(SourceSlice.whole(name, rows, cols))));
          break;
        case ROWS: {
          long part = rows / opts.tp();
          emit(key, dims.length == 1 ? Shape.of(part) : Shape.of(part, cols),
              List.of(Band.of(SourceSlice.rows(name, t * part, part, cols))));
          break;
        }
        case SIDE_BY_SIDE: {
          // [e | h] then rows of part t: one band, the sources' row parts left to right
          long part = rows / opts.tp();
          List<SourceSlice> slices = new ArrayList<>();
          long width = 0;
          for (int i = 0; i < names.size(); i++) {
            long w = row.sources().get(i).shape(cfg, hf)[1];
            slices.add(SourceSlice.rows(names.get(i), t * part, part, w));
            width += w;
          }
          emit(key, Shape.of(part, width), List.of(new Band(slices)));
          break;
        }
        case COLUMNS: {
          long part = cols / opts.tp();
          emit(key, Shape.of(rows, part), List.of(Band.of(SourceSlice.cols(name, rows, t * part, part))));
          break;
        }
        case STACKED: {
          List<Band> bands = new ArrayList<>();
          long total = 0;
          for (int i = 0; i < names.size(); i++) {
            long[] d = row.sources().get(i).shape(cfg, hf);
            bands.add(Band.of(SourceSlice.whole(names.get(i), d[0], d[1])));
            total += d[0];
          }
          emit(key, Shape.of(total, cols), bands);
          break;
        }
        case GATED: {
          // fc1 = [gate rows of part t ; up rows of part t] (§3.5)
          long w = rows / opts.tp();
          emit(key, Shape.of(2 * w, cols), List.of(Band.of(SourceSlice.rows(names.get(0), t * w, w, cols)),
              Band.of(SourceSlice.rows(names.get(1), t * w, w, cols))));
          break;
        }
        case HEADS:
          emit(key, perHead(name, row.heads(), cols));
          break;
        default:
          throw new IllegalStateException(row.split().name());
      }
    }

    /** §3.4: per head of this tp rank, {@code count} rows from {@code offset} within the head. */
    private Assembly perHead(String src, HeadRows h, long cols) {
      long headDim = h.headDim().applyAsLong(cfg);
      long offset = h.offset().applyAsLong(cfg);
      long count = h.count().applyAsLong(cfg);
      long headsPerRank = cfg.attentionHeads / opts.tp();
      List<Band> bands = new ArrayList<>();
      for (long n = t * headsPerRank; n < (t + 1) * headsPerRank; n++) {
        bands.add(Band.of(SourceSlice.rows(src, n * headDim + offset, count, cols)));
      }
      return new Assembly(Shape.of(headsPerRank * count, cols), bands);
    }

    /**
     * §3.7.2: weight1 holds W1[l, h, j] (transposed [gate_c ; up_c]) relabelled [H, E_l·2F_t]; weight2 [E_l·F_t, H]
     * stacks the transposed column slices of down.
     */
    private void groupedExperts(Row row, String key, int hf) {
      long h = cfg.hiddenSize;
      long f = cfg.moeIntermediateSize;
      // V4 keeps experts whole on every tp rank (expert-TP 1, §11.3)
      long ft = cfg.v4() ? f : f / opts.expertTp();
      long local = cfg.routedExperts / ((long) opts.ep() * (opts.tpExtendEp() ? opts.tp() : 1));
      long firstExpert = opts.tpExtendEp() ? ((long) r * opts.tp() + t) * local : r * local;
      int c = opts.tpExtendEp() || cfg.v4() ? 0 : t;
      boolean w1 = row.split() == Split.GROUPED_W1;
      List<Band> bands = new ArrayList<>();
      for (long l = 0; l < local; l++) {
        List<SourceSlice> slices = new ArrayList<>();
        for (Source s : row.sources()) {
          String name = source(s.hfName(cfg, hf, firstExpert + l), s.shape(cfg, hf));
          slices.add((w1 ? SourceSlice.rows(name, c * ft, ft, h) : SourceSlice.cols(name, h, c * ft, ft)).transposed());
        }
        bands.add(new Band(slices));
      }
      emit(key, w1 ? Shape.of(h, local * 2 * ft) : Shape.of(local * ft, h), bands);
    }

    // ---- small builders ----

    private String source(String name, long[] dims) {
      sources.put(name, Shape.of(dims));
      return name;
    }

    private void emit(String key, Assembly a) {
      emit(key, a.shape, a.bands);
    }

    private void emit(String key, Shape shape, List<Band> bands) {
      out.add(new AssembledTensor(key, shape, bands));
    }
  }

  private static final class Assembly {
    final Shape shape;
    final List<Band> bands;

    Assembly(Shape shape, List<Band> bands) {
      this.shape = shape;
      this.bands = bands;
    }
  }
}
