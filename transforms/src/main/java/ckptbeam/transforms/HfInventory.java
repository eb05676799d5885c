package ckptbeam.transforms;

import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import java.util.ArrayList;
import java.util.List;

/**
 * Every tensor a bf16 HF DeepSeek-V3-architecture checkpoint holds for a given config (docs/formats.md §4.2): names,
 * shapes and dtypes, grouped by the layer they belong to.
 */
public final class HfInventory {
  /** One tensor of the inventory. */
  public static final class Entry {
    public final String name;
    public final Shape shape;
    public final DType dtype;
    /** -1 for the embedding, {@code num_hidden_layers + M} for norm and lm_head, else the HF layer index. */
    public final int unit;

    Entry(String name, Shape shape, DType dtype, int unit) {
      this.name = name;
      this.shape = shape;
      this.dtype = dtype;
      this.unit = unit;
    }
  }

  private HfInventory() {}

  /**
   * The tensors in a natural order: embedding, layers 0.., norm and lm_head, then the MTP layers. For an FP8 config
   * (quantization_config), every 2-D projection of attention, dense MLP and experts is F8_E4M3 with a float32
   * {@code <name>_scale_inv} of {@code [ceil(out/B), ceil(in/B)]} right after it (docs/formats.md §3.2).
   */
  public static List<Entry> of(ModelConfig c) {
    List<Entry> plain = plain(c);
    if (!c.fp8) {
      return plain;
    }
    List<Entry> out = new ArrayList<>();
    for (Entry e : plain) {
      if (!isFp8(e.name)) {
        out.add(e);
        continue;
      }
      out.add(new Entry(e.name, e.shape, DType.F8_E4M3, e.unit));
      long rows = (e.shape.dim(0) + c.fp8BlockRows - 1) / c.fp8BlockRows;
      long cols = (e.shape.dim(1) + c.fp8BlockCols - 1) / c.fp8BlockCols;
      out.add(new Entry(e.name + "_scale_inv", Shape.of(rows, cols), DType.F32, e.unit));
    }
    return out;
  }

  /**
   * Which weights DeepSeek's release stores in FP8: the projections (and V3.2's indexer wq_b and wk), not eh_proj,
   * the indexer's weights_proj, router, embeddings, heads, norms.
   */
  public static boolean isFp8(String name) {
    return name.startsWith("model.layers.") && (name.endsWith("_proj.weight") && !name.endsWith("eh_proj.weight")
        && !name.endsWith("indexer.weights_proj.weight") || name.endsWith("indexer.wq_b.weight")
        || name.endsWith("indexer.wk.weight"));
  }

  private static List<Entry> plain(ModelConfig c) {
    List<Entry> out = new ArrayList<>();
    long h = c.hiddenSize;
    out.add(new Entry(HfNames.EMBED, Shape.of(c.vocabSize, h), DType.BF16, -1));
    for (int l = 0; l < c.hiddenLayers + c.nextnPredictLayers; l++) {
      layer(c, l, out);
    }
    int tail = c.hiddenLayers - 1;
    out.add(new Entry(HfNames.NORM, Shape.of(h), DType.BF16, tail));
    out.add(new Entry(HfNames.LM_HEAD, Shape.of(c.vocabSize, h), DType.BF16, tail));
    return out;
  }

  private static void layer(ModelConfig c, int l, List<Entry> out) {
    long h = c.hiddenSize;
    long heads = c.attentionHeads;
    boolean mtp = l >= c.hiddenLayers;
    if (mtp) {
      add(out, l, "embed_tokens.weight", DType.BF16, c.vocabSize, h);
      add(out, l, "enorm.weight", DType.BF16, h);
      add(out, l, "hnorm.weight", DType.BF16, h);
      add(out, l, "eh_proj.weight", DType.BF16, h, 2 * h);
      add(out, l, "shared_head.norm.weight", DType.BF16, h);
      add(out, l, "shared_head.head.weight", DType.BF16, c.vocabSize, h);
    }
    add(out, l, "input_layernorm.weight", DType.BF16, h);
    add(out, l, "post_attention_layernorm.weight", DType.BF16, h);
    add(out, l, "self_attn.q_a_proj.weight", DType.BF16, c.qLoraRank, h);
    add(out, l, "self_attn.q_a_layernorm.weight", DType.BF16, c.qLoraRank);
    add(out, l, "self_attn.q_b_proj.weight", DType.BF16, heads * c.qHeadDim(), c.qLoraRank);
    add(out, l, "self_attn.kv_a_proj_with_mqa.weight", DType.BF16, c.kvLoraRank + c.qkRopeHeadDim, h);
    add(out, l, "self_attn.kv_a_layernorm.weight", DType.BF16, c.kvLoraRank);
    add(out, l, "self_attn.kv_b_proj.weight", DType.BF16, heads * c.kvHeadDim(), c.kvLoraRank);
    add(out, l, "self_attn.o_proj.weight", DType.BF16, h, heads * c.vHeadDim);
    if (c.dsaIndexer()) {
      add(out, l, "self_attn.indexer.wq_b.weight", DType.BF16, c.indexHeads * c.indexHeadDim, c.qLoraRank);
      add(out, l, "self_attn.indexer.wk.weight", DType.BF16, c.indexHeadDim, h);
      add(out, l, "self_attn.indexer.k_norm.weight", DType.F32, c.indexHeadDim);
      add(out, l, "self_attn.indexer.k_norm.bias", DType.F32, c.indexHeadDim);
      add(out, l, "self_attn.indexer.weights_proj.weight", DType.BF16, c.indexHeads, h);
    }
    if (l < c.firstKDenseReplace) {
      add(out, l, "mlp.gate_proj.weight", DType.BF16, c.intermediateSize, h);
      add(out, l, "mlp.up_proj.weight", DType.BF16, c.intermediateSize, h);
      add(out, l, "mlp.down_proj.weight", DType.BF16, h, c.intermediateSize);
      return;
    }
    add(out, l, "mlp.gate.weight", DType.BF16, c.routedExperts, h);
    add(out, l, "mlp.gate.e_score_correction_bias", DType.F32, c.routedExperts);
    if (c.sharedExperts > 0) {
      add(out, l, "mlp.shared_experts.gate_proj.weight", DType.BF16, c.sharedIntermediateSize(), h);
      add(out, l, "mlp.shared_experts.up_proj.weight", DType.BF16, c.sharedIntermediateSize(), h);
      add(out, l, "mlp.shared_experts.down_proj.weight", DType.BF16, h, c.sharedIntermediateSize());
    }
    for (long e = 0; e < c.routedExperts; e++) {
      String p = "mlp.experts." + e + ".";
      add(out, l, p + "gate_proj.weight", DType.BF16, c.moeIntermediateSize, h);
      add(out, l, p + "up_proj.weight", DType.BF16, c.moeIntermediateSize, h);
      add(out, l, p + "down_proj.weight", DType.BF16, h, c.moeIntermediateSize);
    }
  }

  private static void add(List<Entry> out, int layer, String suffix, DType dtype, long... dims) {
    out.add(new Entry(HfNames.layer(layer, suffix), Shape.of(dims), dtype, layer));
  }
}
