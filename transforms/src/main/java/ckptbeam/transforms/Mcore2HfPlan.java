package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The mcore → HF plan (docs/mapping.md §5): the HF shard files and, for each HF tensor, how to assemble it from the rank
 * files. It is derived from the forward plan of the same layout: every slice of an HF tensor that the forward plan
 * places into a rank-file tensor is read back from there, so the two directions cannot disagree. Replicated
 * regions are read from the first rank file read that holds them (ep 0, tp 0 first; {@link #rankFilesRead}), as the
 * reference does.
 */
public final class Mcore2HfPlan extends HfShardsPlan {
  private static final long serialVersionUID = 1L;

  private transient Map<String, List<AssembledTensor>> files;
  private transient Map<String, Shape> hfShapes;

  /**
   * @param forward the HF → mcore plan of the layout the checkpoint was written with, over the output config
   *     (layers numbered 0 … R-1, see {@link #outputConfig})
   * @param iterationDir the folder the tracker names ({@code iter_0000001}, {@code release})
   */
  public Mcore2HfPlan(Hf2McorePlan forward, String iterationDir) {
    super(forward, iterationDir);
  }

  /**
   * The forward plan of the layout a checkpoint was written with, over the output's layer structure (layers 0 …
   * R-1, §4.1): the model config with the layer counts the layout actually holds.
   */
  public static Hf2McorePlan forwardPlan(ModelConfig cfg, LayoutOptions layout) {
    int numLayers = layout.numLayers() >= 0 ? layout.numLayers() : cfg.hiddenLayers + layout.noopLayers().size();
    int real = numLayers - layout.noopLayers().size();
    try {
      // the config is adjusted to what the layout holds (fewer layers than the model is fine); more than config.json
      // describes is refused here, before a plan for them is built (a checkpoint's args could ask for a billion)
      if (real > cfg.hiddenLayers) {
        throw new LayoutException(List.of("the layout holds " + real + " HF decoder layers (",
            LayoutException.Setting.NUM_LAYERS, " " + numLayers + " minus " + layout.noopLayers().size()
            + " noop layers) but config.json has num_hidden_layers " + cfg.hiddenLayers));
      }
      layout.checkMtpFits(cfg);
      int k = Math.min(layout.firstKDense() >= 0 ? layout.firstKDense() : cfg.firstKDenseReplace, Math.max(real, 0));
      // a Base checkpoint's MTP stage copy is (was written from) the MTP layer's own embedding
      ModelConfig out = cfg.withLayers(Math.max(real, 1), k, layout.mtpLayers()).withOwnMtpEmbedding(
          cfg.v4() && layout.v4Base());
      return new Hf2McorePlan(out, layout.toBuilder().numLayers(numLayers).firstKDense(k).build().resolve(out));
    } catch (LayoutException e) {
      throw e.on(LayoutException.Side.SOURCE);
    }
  }

  public Hf2McorePlan forward() {
    return forward;
  }

  /** The name a rank-file tensor goes by in the pipeline: {@code mp_rank_00_001:model0/decoder.layers.0…}. */
  public static String sourceName(RankFile f, String chunk, String key) {
    return f.dirName() + ":" + chunk + "/" + key;
  }

  /** HF shard file → its tensors, each assembled from rank-file tensors. */
  @Override
  public Map<String, List<AssembledTensor>> files() {
    if (files == null) {
      build();
    }
    return files;
  }

  /** Shapes of every rank-file tensor, by source name. */
  @Override
  Map<String, Shape> sourceShapes() {
    Map<String, Shape> out = new LinkedHashMap<>();
    for (RankFile f : rankFilesRead()) {
      forward.contents(f).forEach((chunk, ts) -> ts.forEach(t -> out.put(sourceName(f, chunk, t.key()), t.shape())));
    }
    return out;
  }

  /**
   * Rank-file tensors that should be copies of one another (a tensor replicated over tp or ep ranks: the same HF
   * slices, the same shape), of at most {@code maxElements} elements: source names, in groups of two or more, the
   * layout's first copy first. MindSpeed's mcore2hf takes one copy and never compares them (V4 spec §7.2 item 6).
   * The MTP stage's embedding is left out: it is not read back, and a Base checkpoint's may be its own.
   */
  public List<List<String>> replicas(long maxElements) {
    Map<String, List<String>> bySlices = new LinkedHashMap<>();
    for (RankFile f : rankFilesRead()) {
      forward.contents(f).forEach((chunk, ts) -> ts.forEach(t -> {
        if (t.shape().numel() <= maxElements && !t.key().endsWith("word_embeddings.weight")) {
          StringBuilder slices = new StringBuilder(t.shape().toString());
          t.bands().forEach(b -> b.slices().forEach(
              s -> slices.append(' ').append(s).append('/').append(s.viewCols())));
          bySlices.computeIfAbsent(slices.toString(), k -> new ArrayList<>()).add(sourceName(f, chunk, t.key()));
        }
      }));
    }
    return bySlices.values().stream().filter(g -> g.size() > 1).toList();
  }

  // ---- inversion ----

  private void build() {
    hfShapes = new LinkedHashMap<>();
    Map<String, Map<String, HfRegion>> regions = new LinkedHashMap<>(); // HF name → "row,col" → region
    List<RankFile> ranks = new ArrayList<>(rankFilesRead());
    ranks.sort(Comparator.comparingInt((RankFile f) -> f.epRank).thenComparingInt(f -> f.tpRank).thenComparingInt(f -> f.ppRank));
    for (RankFile f : ranks) {
      Hf2McorePlan.RankPlan rank = forward.plan(f);
      hfShapes.putAll(rank.sources);
      for (Map.Entry<String, List<AssembledTensor>> chunk : rank.contents.entrySet()) {
        for (AssembledTensor m : chunk.getValue()) {
          invert(sourceName(f, chunk.getKey(), m.key()), m, regions);
        }
      }
    }
    ModelConfig cfg = forward.config();
    LayoutOptions o = forward.options();
    int real = cfg.hiddenLayers;
    // MTP extras the forward direction does not write (V3): the head is lm_head's copy, the embedding the stage's
    for (int m = 0; m < (cfg.v4() ? 0 : o.mtpLayers()); m++) {
      String head = HfNames.layer(real + m, "shared_head.head.weight");
      regions.put(head, regions.get(HfNames.LM_HEAD));
      hfShapes.put(head, hfShapes.get(HfNames.LM_HEAD));
      String embed = HfNames.layer(real + m, "embed_tokens.weight");
      if (!regions.containsKey(embed)) {
        String first = HfNames.layer(real, "embed_tokens.weight");
        regions.put(embed, regions.containsKey(first) ? regions.get(first) : regions.get(HfNames.EMBED));
        hfShapes.put(embed, hfShapes.get(HfNames.EMBED));
      }
    }
    if (cfg.v4() && o.v4Base()) {
      // MindSpeed writes a deepseek4_base checkpoint's MTP embedding and head back as copies of the main ones, and
      // never reads the MTP stage's embedding copy (V4 spec §5.4, §8 #11: copied; §11.8)
      for (int m = 0; m < o.mtpLayers(); m++) {
        String embed = HfNames.layer(cfg, real + m, TensorMapping.V4_BASE_MTP_EMBED);
        regions.put(embed, regions.get(HfNames.V4_EMBED));
        hfShapes.put(embed, hfShapes.get(HfNames.V4_EMBED));
        String head = HfNames.layer(cfg, real + m, TensorMapping.V4_BASE_MTP_HEAD);
        regions.put(head, regions.get("head.weight"));
        hfShapes.put(head, hfShapes.get("head.weight"));
      }
    }
    int lastSaved = lastSavedLayer();
    int total = real + o.mtpLayers();
    TreeMap<Integer, List<AssembledTensor>> byLayer = new TreeMap<>();
    for (Map.Entry<String, Map<String, HfRegion>> e : regions.entrySet()) {
      String name = e.getKey();
      int layer = HfNames.layerOf(cfg, name);
      if (name.equals(HfNames.embedding(cfg))) {
        layer = 0;
      } else if (layer < 0) {
        layer = lastSaved; // the final norm, the head (and V4's hc_head) go with the last saved layer
      }
      byLayer.computeIfAbsent(layer, k -> new ArrayList<>()).add(assemble(name, hfShapes.get(name), e.getValue()));
    }
    files = new LinkedHashMap<>();
    byLayer.forEach((layer, ts) -> files.put(SafetensorsIndex.shardName(layer + 1, total), ts));
  }

  /** Records, for every slice of {@code m}, which HF region it holds and where inside {@code m}. */
  private static void invert(String source, AssembledTensor m, Map<String, Map<String, HfRegion>> regions) {
    long width = m.bands().get(0).width();
    for (Band b : m.bands()) {
      if (b.width() != width) {
        throw new IllegalStateException(m.key() + ": bands of different widths cannot be read back");
      }
    }
    long viewCols = width == m.shape().cols() ? 0 : width;
    long rowOff = 0;
    for (Band b : m.bands()) {
      long colOff = 0;
      for (SourceSlice s : b.slices()) {
        SourceSlice back = new SourceSlice(source, rowOff, s.outputHeight(), colOff, s.outputWidth(), s.isTransposed(),
            viewCols);
        regions.computeIfAbsent(s.source(), k -> new LinkedHashMap<>())
            .putIfAbsent(s.rowStart() + "," + s.colStart(),
                new HfRegion(s.rowStart(), s.rowCount(), s.colStart(), s.colCount(), back));
        colOff += s.outputWidth();
      }
      rowOff += b.height();
    }
  }

  /** Tiles an HF tensor from its regions: bands of equal row ranges, slices left to right. */
  private static AssembledTensor assemble(String name, Shape shape, Map<String, HfRegion> regions) {
    TreeMap<Long, TreeMap<Long, HfRegion>> rows = new TreeMap<>();
    for (HfRegion r : regions.values()) {
      rows.computeIfAbsent(r.row(), k -> new TreeMap<>()).put(r.col(), r);
    }
    List<Band> bands = new ArrayList<>();
    long nextRow = 0;
    for (Map.Entry<Long, TreeMap<Long, HfRegion>> band : rows.entrySet()) {
      List<SourceSlice> slices = new ArrayList<>();
      long nextCol = 0;
      long height = -1;
      for (HfRegion r : band.getValue().values()) {
        if (r.col() != nextCol || band.getKey() != nextRow || (height >= 0 && r.rows() != height)) {
          throw new IllegalStateException(name + ": the layout's slices do not tile the tensor");
        }
        height = r.rows();
        nextCol += r.cols();
        slices.add(r.from());
      }
      if (nextCol != shape.cols()) {
        throw new IllegalStateException(name + ": columns " + nextCol + ".." + shape.cols() + " are in no rank file");
      }
      bands.add(new Band(slices));
      nextRow += height;
    }
    if (nextRow != shape.rows()) {
      throw new IllegalStateException(name + ": rows " + nextRow + ".." + shape.rows() + " are in no rank file");
    }
    return new AssembledTensor(name, shape, bands);
  }

  /**
   * The HF layer whose file also gets the final norm and lm_head (§5.3): the last layer of the last non-empty chunk,
   * scanning stages and chunks from the end (dualpipe: stage 0, chunk 1 then chunk 0).
   */
  int lastSavedLayer() {
    LayerPlacement lp = forward.placement();
    if (forward.options().dualpipe()) {
      for (int v = 1; v >= 0; v--) {
        List<LayerPlacement.Placed> l = lp.chunk(0, v).layers;
        if (!l.isEmpty()) {
          return l.get(l.size() - 1).hfIndex();
        }
      }
    }
    for (int p = lp.pipelineStages() - 1; p >= 0; p--) {
      for (int v = lp.virtualChunks() - 1; v >= 0; v--) {
        List<LayerPlacement.Placed> l = lp.chunk(p, v).layers;
        if (!l.isEmpty()) {
          return l.get(l.size() - 1).hfIndex();
        }
      }
    }
    throw new IllegalStateException("no real layer in the layout");
  }
}
