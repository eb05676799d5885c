package ckptbeam.transforms;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
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

  /** @param opts options already {@link LayoutOptions#resolve resolved} against {@code cfg} */
  public Hf2McorePlan(ModelConfig cfg, LayoutOptions opts) {
    this.cfg = cfg;
    this.opts = opts;
  }

  public ModelConfig config() {
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

  /** Every rank file of the layout, sorted by directory name. */
  public List<RankFile> rankFiles() {
    List<RankFile> files = new ArrayList<>();
    for (int p = 0; p < opts.pp; p++) {
      for (int e = 0; e < opts.ep; e++) {
        for (int t = 0; t < opts.tp; t++) {
          files.add(new RankFile(t, p, e, opts.pp, opts.ep));
        }
      }
    }
    files.sort(null);
    return files;
  }

  @Override
  public List<String> targets() {
    List<String> out = new ArrayList<>();
    for (RankFile f : rankFiles()) {
      out.add(f.relativePath(ITERATION));
    }
    return out;
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

  /** The rank file of a target path ({@code iter_0000001/mp_rank_00/model_optim_rng.pt}). */
  public RankFile rankFile(String target) {
    for (RankFile f : rankFiles()) {
      if (f.relativePath(ITERATION).equals(target)) {
        return f;
      }
    }
    throw new IllegalArgumentException("not a rank file of this layout: " + target);
  }

  /** One rank file's model mappings and the HF tensors they read, built together in one pass. */
  public static final class RankPlan {
    /** Key {@code model}, or {@code model0 … modelN} with virtual chunks → the tensors in order. */
    public final Map<String, List<AssembledTensor>> contents = new LinkedHashMap<>();
    /** The expected shape of every HF tensor read, in first-use order. */
    public final Map<String, Shape> sources = new LinkedHashMap<>();
  }

  public RankPlan plan(RankFile f) {
    RankPlan out = new RankPlan();
    LayerPlacement lp = placement();
    for (int v = 0; v < lp.virtualChunks(); v++) {
      ChunkBuilder b = new ChunkBuilder(f.tp, f.ep);
      out.contents.put(opts.hasVirtualChunks() ? "model" + v : "model", b.build(lp.chunk(f.pp, v)));
      out.sources.putAll(b.sources);
    }
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

  /** Builds the ordered tensor list of one chunk for one (tp, ep) rank. */
  private final class ChunkBuilder {
    private final int t;
    private final int r;
    private final McoreKeyNames keys = new McoreKeyNames(opts.keyNames);
    private final List<AssembledTensor> out = new ArrayList<>();
    final Map<String, Shape> sources = new LinkedHashMap<>();

    ChunkBuilder(int t, int r) {
      this.t = t;
      this.r = r;
    }

    List<AssembledTensor> build(LayerPlacement.Chunk c) {
      long h = cfg.hiddenSize;
      long vocab = cfg.vocabSize;
      if (c.embedding) {
        emit(keys.key("embedding"), rowsOfRank(HfNames.EMBED, vocab, h));
      }
      if (c.finalNorm && placement().finalFirst()) {
        finalNormAndOutput();
      }
      for (int m = 0; m < c.mtp.size(); m++) {
        mtpLayer(m, c.mtp.get(m));
      }
      for (LayerPlacement.Placed l : c.layers) {
        transformerLayer(keys.layerPrefix(l.local), l.hfIndex);
      }
      if (c.finalNorm && !placement().finalFirst()) {
        finalNormAndOutput();
      }
      return out;
    }

    private void finalNormAndOutput() {
      emit(keys.key(opts.mtpLayers > 0 ? "final_norm_with_mtp" : "final_norm"), vector(HfNames.NORM, cfg.hiddenSize));
      emit(keys.key("output"), rowsOfRank(HfNames.LM_HEAD, cfg.vocabSize, cfg.hiddenSize));
    }

    private void mtpLayer(int m, int hf) {
      long h = cfg.hiddenSize;
      emit(keys.mtp("mtp_enorm", m), vector(HfNames.layer(hf, "enorm.weight"), h));
      emit(keys.mtp("mtp_hnorm", m), vector(HfNames.layer(hf, "hnorm.weight"), h));
      emit(keys.mtp("mtp_eh_proj", m), rowsOfRank(HfNames.layer(hf, "eh_proj.weight"), h, 2 * h));
      // The stage's copy of the embedding (§3.8). In the current names every MTP layer would write the same key;
      // the reference's dict then keeps one copy, so with several MTP layers we write the first layer's.
      boolean sharedKey = !keys.template("mtp_embedding").contains("{m}");
      if (opts.pp > 1 && (m == 0 || !sharedKey)) {
        emit(keys.mtp("mtp_embedding", m), rowsOfRank(HfNames.layer(hf, "embed_tokens.weight"), cfg.vocabSize, h));
      }
      transformerLayer(keys.mtp("mtp_layer", m), hf);
      emit(keys.mtp("mtp_final_norm", m), vector(HfNames.layer(hf, "shared_head.norm.weight"), h));
    }

    private void transformerLayer(String prefix, int hf) {
      long h = cfg.hiddenSize;
      emit(prefix + keys.key("input_norm"), vector(HfNames.layer(hf, "input_layernorm.weight"), h));
      emit(prefix + keys.key("pre_mlp_norm"), vector(HfNames.layer(hf, "post_attention_layernorm.weight"), h));
      attention(prefix, hf);
      if (cfg.dsaIndexer()) {
        indexer(prefix, hf);
      }
      if (hf < cfg.firstKDenseReplace) {
        gatedMlp(prefix + keys.key("fc1"), prefix + keys.key("fc2"), HfNames.layer(hf, "mlp."), cfg.intermediateSize,
            t, opts.tp);
      } else {
        moe(prefix, hf);
      }
    }

    private void attention(String prefix, int hf) {
      long h = cfg.hiddenSize;
      long heads = cfg.attentionHeads;
      String a = "self_attn.";
      String qa = source(HfNames.layer(hf, a + "q_a_proj.weight"), cfg.qLoraRank, h);
      String kva = source(HfNames.layer(hf, a + "kv_a_proj_with_mqa.weight"), cfg.kvLoraRank + cfg.qkRopeHeadDim, h);
      emit(prefix + keys.key("qkv"), Shape.of(cfg.qkvRows(), h), List.of(
          Band.of(SourceSlice.whole(qa, cfg.qLoraRank, h)),
          Band.of(SourceSlice.whole(kva, cfg.kvLoraRank + cfg.qkRopeHeadDim, h))));
      emit(prefix + keys.key("proj"), colsOfRank(HfNames.layer(hf, a + "o_proj.weight"), h, heads * cfg.vHeadDim));
      emit(prefix + keys.key("q_norm"), vector(HfNames.layer(hf, a + "q_a_layernorm.weight"), cfg.qLoraRank));
      emit(prefix + keys.key("kv_norm"), vector(HfNames.layer(hf, a + "kv_a_layernorm.weight"), cfg.kvLoraRank));
      String qb = source(HfNames.layer(hf, a + "q_b_proj.weight"), heads * cfg.qHeadDim(), cfg.qLoraRank);
      String kvb = source(HfNames.layer(hf, a + "kv_b_proj.weight"), heads * cfg.kvHeadDim(), cfg.kvLoraRank);
      if (!opts.mlaMmSplit) {
        emit(prefix + keys.key("q_up"), rowsOfRank(qb, heads * cfg.qHeadDim(), cfg.qLoraRank));
        emit(prefix + keys.key("kv_up"), rowsOfRank(kvb, heads * cfg.kvHeadDim(), cfg.kvLoraRank));
        return;
      }
      // §3.4: per head, the nope/rope rows of q_b and the nope/v rows of kv_b, heads of this tp rank only
      emit(prefix + keys.key("qk_nope"), perHead(qb, cfg.qHeadDim(), 0, cfg.qkNopeHeadDim, cfg.qLoraRank));
      emit(prefix + keys.key("qk_rope"), perHead(qb, cfg.qHeadDim(), cfg.qkNopeHeadDim, cfg.qkRopeHeadDim,
          cfg.qLoraRank));
      emit(prefix + keys.key("kv_nope"), perHead(kvb, cfg.kvHeadDim(), 0, cfg.qkNopeHeadDim, cfg.kvLoraRank));
      emit(prefix + keys.key("v"), perHead(kvb, cfg.kvHeadDim(), cfg.qkNopeHeadDim, cfg.vHeadDim, cfg.kvLoraRank));
    }

    /** DeepSeek-V3.2's DSA indexer: every tensor whole, in every (tp, ep) rank of the stage; dtypes kept. */
    private void indexer(String prefix, int hf) {
      long h = cfg.hiddenSize;
      String i = "self_attn.indexer.";
      emit(prefix + keys.key("indexer_wq_b"), whole(HfNames.layer(hf, i + "wq_b.weight"),
          cfg.indexHeads * cfg.indexHeadDim, cfg.qLoraRank));
      emit(prefix + keys.key("indexer_wk"), whole(HfNames.layer(hf, i + "wk.weight"), cfg.indexHeadDim, h));
      emit(prefix + keys.key("indexer_k_norm"), vector(HfNames.layer(hf, i + "k_norm.weight"), cfg.indexHeadDim));
      emit(prefix + keys.key("indexer_k_norm_bias"), vector(HfNames.layer(hf, i + "k_norm.bias"), cfg.indexHeadDim));
      emit(prefix + keys.key("indexer_weights_proj"), whole(HfNames.layer(hf, i + "weights_proj.weight"),
          cfg.indexHeads, h));
    }

    private Assembly perHead(String src, long headDim, long offset, long count, long cols) {
      long headsPerRank = cfg.attentionHeads / opts.tp;
      List<Band> bands = new ArrayList<>();
      for (long n = t * headsPerRank; n < (t + 1) * headsPerRank; n++) {
        bands.add(Band.of(SourceSlice.rows(src, n * headDim + offset, count, cols)));
      }
      return new Assembly(Shape.of(headsPerRank * count, cols), bands);
    }

    /** fc1 = [gate rows of part c ; up rows of part c], fc2 = columns of part c of down (§3.5). */
    private void gatedMlp(String fc1Key, String fc2Key, String hfPrefix, long width, int c, int parts) {
      long h = cfg.hiddenSize;
      long w = width / parts;
      String gate = source(hfPrefix + "gate_proj.weight", width, h);
      String up = source(hfPrefix + "up_proj.weight", width, h);
      String down = source(hfPrefix + "down_proj.weight", h, width);
      emit(fc1Key, Shape.of(2 * w, h), List.of(
          Band.of(SourceSlice.rows(gate, c * w, w, h)), Band.of(SourceSlice.rows(up, c * w, w, h))));
      emit(fc2Key, Shape.of(h, w), List.of(Band.of(SourceSlice.cols(down, h, c * w, w))));
    }

    private void moe(String prefix, int hf) {
      long h = cfg.hiddenSize;
      long experts = cfg.routedExperts;
      emit(prefix + keys.key("router"), whole(HfNames.layer(hf, "mlp.gate.weight"), experts, h));
      emit(prefix + keys.key("router_bias"), vector(HfNames.layer(hf, "mlp.gate.e_score_correction_bias"), experts));
      if (cfg.sharedExperts > 0) {
        gatedMlp(prefix + keys.key("shared_fc1"), prefix + keys.key("shared_fc2"),
            HfNames.layer(hf, "mlp.shared_experts."), cfg.sharedIntermediateSize(), t, opts.tp);
      }
      if (opts.groupedGemm) {
        groupedExperts(prefix, hf);
      } else {
        long local = experts / opts.ep;
        for (int l = 0; l < local; l++) {
          long g = r * local + l;
          gatedMlp(prefix + keys.expert("expert_fc1", l), prefix + keys.expert("expert_fc2", l),
              HfNames.expert(hf, g, ""), cfg.moeIntermediateSize, t, opts.tp);
        }
      }
    }

    /** §3.7.2: weight1 holds W1[l, h, j] (transposed [gate_c ; up_c]) relabelled [H, E_l·2F_t]; weight2 [E_l·F_t, H]. */
    private void groupedExperts(String prefix, int hf) {
      long h = cfg.hiddenSize;
      long f = cfg.moeIntermediateSize;
      int expertTp = opts.expertTp();
      long ft = f / expertTp;
      long local = cfg.routedExperts / ((long) opts.ep * (opts.tpExtendEp ? opts.tp : 1));
      long firstExpert = opts.tpExtendEp ? ((long) r * opts.tp + t) * local : r * local;
      int c = opts.tpExtendEp ? 0 : t;
      List<Band> w1 = new ArrayList<>();
      List<Band> w2 = new ArrayList<>();
      for (long l = 0; l < local; l++) {
        long g = firstExpert + l;
        String gate = source(HfNames.expert(hf, g, "gate_proj.weight"), f, h);
        String up = source(HfNames.expert(hf, g, "up_proj.weight"), f, h);
        String down = source(HfNames.expert(hf, g, "down_proj.weight"), h, f);
        w1.add(Band.of(SourceSlice.rows(gate, c * ft, ft, h).transposed(), SourceSlice.rows(up, c * ft, ft, h).transposed()));
        w2.add(Band.of(SourceSlice.cols(down, h, c * ft, ft).transposed()));
      }
      emit(prefix + keys.key("weight1"), Shape.of(h, local * 2 * ft), w1);
      emit(prefix + keys.key("weight2"), Shape.of(local * ft, h), w2);
    }

    // ---- small builders ----

    private String source(String name, long rows, long cols) {
      sources.put(name, cols == 1 ? Shape.of(rows) : Shape.of(rows, cols));
      return name;
    }

    private Assembly vector(String name, long n) {
      source(name, n, 1);
      return new Assembly(Shape.of(n), List.of(Band.of(SourceSlice.whole(name, n, 1))));
    }

    private Assembly whole(String name, long rows, long cols) {
      source(name, rows, cols);
      return new Assembly(Shape.of(rows, cols), List.of(Band.of(SourceSlice.whole(name, rows, cols))));
    }

    /** Rows of this tp rank: split dim 0 into tp parts. */
    private Assembly rowsOfRank(String name, long rows, long cols) {
      source(name, rows, cols);
      long part = rows / opts.tp;
      return new Assembly(Shape.of(part, cols), List.of(Band.of(SourceSlice.rows(name, t * part, part, cols))));
    }

    /** Columns of this tp rank: split dim 1 into tp parts. */
    private Assembly colsOfRank(String name, long rows, long cols) {
      source(name, rows, cols);
      long part = cols / opts.tp;
      return new Assembly(Shape.of(rows, part), List.of(Band.of(SourceSlice.cols(name, rows, t * part, part))));
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
