package ckptbeam.transforms;

import ckptbeam.io.tensor.DType;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.ToLongFunction;

/**
 * Where every HF tensor goes (docs/mapping.md §3), as one table: a row per mcore tensor family, with its mcore key,
 * the HF tensors it is built from, how it is split over tensor-parallel ranks, and whether LoRA export and
 * {@code --qlora-nf4} apply. {@link Hf2McorePlan} walks the rows part by part; the LoRA export, the NF4 key set, the
 * LoRA lookup's grouped keys, the HF inventory and the mcore key names derive from it; the inverse plan derives from
 * the forward plan. A new variant is new rows.
 *
 * <p>Row order is the order tensors are written in a rank file (§3.9), so it is part of the output bytes.
 */
public final class TensorMapping {
  /** Which part of a rank file a row belongs to; the plan emits parts in its own order (§3.9). */
  public enum Part {
    /** The first stage's word embedding. */
    EMBEDDING,
    /** The last stage's final norm and output layer. */
    FINAL,
    /** An MTP layer's own tensors, before its transformer layer. */
    MTP_INPUT,
    /** An MTP stage's copy of the embedding, when pp > 1. */
    MTP_EMBEDDING,
    /** An MTP layer's final norm, after its transformer layer. */
    MTP_OUTPUT,
    /** Norms, attention and V3.2's indexer of every decoder and MTP layer. */
    ATTENTION,
    /** The MLP of a dense layer (HF index below {@code first_k_dense_replace}). */
    DENSE_MLP,
    /** Router and shared experts of a MoE layer. */
    MOE,
    /** One routed expert; repeated for each local expert ({@code {l}} in the key, {@code {e}} in HF names). */
    EXPERT,
    /** All local experts in two tensors ({@code --moe-grouped-gemm}). */
    GROUPED_EXPERTS
  }

  /** How a tensor is split over the tp ranks (docs/mapping.md §3). */
  public enum Split {
    /** Every rank holds the whole tensor. */
    REPLICATED,
    /** Column-parallel: dim 0 in tp equal parts, rank t holds part t. */
    ROWS,
    /** Row-parallel: dim 1 in tp equal parts. */
    COLUMNS,
    /** The sources whole, their rows stacked ({@code linear_qkv}), on every rank. */
    STACKED,
    /** Gate/up interleave: rank t's row part of the first source stacked on that of the second (fc1, §3.5). */
    GATED,
    /** The heads of rank t, a fixed row range within each head ({@code --mla-mm-split}, §3.4). */
    HEADS,
    /** Grouped {@code weight1}: per local expert the transposed gate/up slices (§3.7.2). */
    GROUPED_W1,
    /** Grouped {@code weight2}: per local expert the transposed down slice (§3.7.2). */
    GROUPED_W2,
    /** The sources' columns side by side, then dim 0 in tp parts (V4's {@code eh_proj = [e_proj | h_proj]}). */
    SIDE_BY_SIDE
  }

  /** When a row applies, beyond its part. */
  public enum When {
    ALWAYS, WITHOUT_MTP, WITH_MTP, FUSED_MLA, SPLIT_MLA, DSA_INDEXER, SHARED_EXPERTS,
    /** V4: a decoder layer whose compress ratio is not 0 (§11.3). */
    COMPRESSOR,
    /** V4: a decoder layer whose compress ratio is 4, which also has the CSA indexer. */
    CSA_INDEXER,
    /** V4: a decoder layer below {@code num_hash_layers} (routes by {@code tid2eid}). */
    HASH,
    /** V4: every other layer, MTP layers included (routes with a bias). */
    NOT_HASH,
    /** V4, a checkpoint whose MTP layers have their own embedding (Base): it is the MTP stage's copy. */
    V4_BASE,
    /** V4, a checkpoint whose MTP layers have none: the model's embedding is the MTP stage's copy. */
    V4_NOT_BASE,
    /** V4 per-expert weights at expert-TP 1: whole on every tp rank. */
    V4_EXPERT_TP_1,
    /** V4 per-expert weights at expert-TP = tp: split like V3's. */
    V4_EXPERT_TP_TP;

    /** Whether the row exists in HF layer {@code layer} (MTP layers numbered after the decoder layers). */
    boolean holdsForLayer(ModelConfig c, int layer) {
      switch (this) {
        case COMPRESSOR: return c.compressRatio(layer) != 0;
        case CSA_INDEXER: return c.compressRatio(layer) == 4;
        case HASH: return c.hashLayer(layer);
        case NOT_HASH: return !c.hashLayer(layer);
        default: return true;
      }
    }

    /** Whether the row exists in a checkpoint of this config whatever the layout (layout conditions hold). */
    boolean holdsForConfig(ModelConfig c) {
      switch (this) {
        case DSA_INDEXER: return c.dsaIndexer();
        case V4_BASE: return c.ownMtpEmbedding;
        case V4_NOT_BASE: return !c.ownMtpEmbedding;
        case SHARED_EXPERTS: return c.sharedExperts > 0;
        default: return true;
      }
    }

    boolean holds(ModelConfig c, LayoutOptions o) {
      switch (this) {
        case WITHOUT_MTP: return o.mtpLayers() == 0;
        case WITH_MTP: return o.mtpLayers() > 0;
        case V4_EXPERT_TP_1: return o.expertTensorParallel() <= 1;
        case V4_EXPERT_TP_TP: return o.expertTensorParallel() > 1;
        case FUSED_MLA: return !o.mlaMmSplit();
        case SPLIT_MLA: return o.mlaMmSplit();
        default: return holdsForConfig(c);
      }
    }
  }

  /** What a row's tensor takes part in besides being converted. */
  public enum Use {
    /** Converted only. */
    PLAIN,
    /** Quantised by {@code --qlora-nf4} (docs/mapping.md §7.1). */
    NF4,
    /** Quantised, and a module whose LoRA factors {@code --save-lora-to-hf} exports (§5.6). */
    NF4_AND_LORA
  }

  /** A dimension of the model, read from its config; {@link #at} also knows the layer (V4's compressor widths). */
  public interface Dim extends ToLongFunction<ModelConfig> {
    default long at(ModelConfig c, int layer) {
      return applyAsLong(c);
    }
  }

  /** A dimension that depends on the HF layer as well as the config. */
  public interface LayerDim extends Dim {
    @Override
    long at(ModelConfig c, int layer);

    @Override
    default long applyAsLong(ModelConfig c) {
      throw new IllegalStateException("a per-layer dimension needs its layer");
    }
  }

  /**
   * One HF tensor a row reads: its name (relative to the layer, unless {@code global}), shape and dtype. A global
   * source in a layer's row is a model-wide tensor that layer reads (V4's MTP embedding copy reads {@code embed}).
   */
  public record Source(String name, Dim rows, Dim cols, DType dtype, boolean global) {
    public Source(String name, Dim rows, Dim cols, DType dtype) {
      this(name, rows, cols, dtype, false);
    }

    /** Shape [rows] for a vector (cols null), else [rows, cols]; for a row not tied to one layer. */
    public long[] shape(ModelConfig c) {
      return shape(c, -1);
    }

    /** The shape in HF layer {@code layer}. */
    public long[] shape(ModelConfig c, int layer) {
      return cols == null ? new long[] {rows.at(c, layer)} : new long[] {rows.at(c, layer), cols.at(c, layer)};
    }

    /**
     * The full HF name in HF layer {@code layer} of this config's naming (a global row's name as it is when layer is
     * negative), with the expert index filled in for {@code {e}}.
     */
    public String hfName(ModelConfig c, int layer, long expert) {
      if (layer < 0 || global) {
        return name;
      }
      return HfNames.layer(c, layer, expert < 0 ? name : name.replace("{e}", Long.toString(expert)));
    }

    /** The HF module of a weight: {@code self_attn.o_proj.weight} → {@code o_proj}. */
    public String module() {
      String[] parts = name.split("\\.");
      return parts[parts.length - 2];
    }
  }

  /** Which rows of each head a {@link Split#HEADS} row takes: {@code count} rows from {@code offset}. */
  public record HeadRows(Dim headDim, Dim offset, Dim count) {}

  /**
   * One row: {@code logical} names it ({@link McoreKeyNames} maps it to a key per naming scheme), {@code mcore} is its
   * current key template, {@code sources} the HF tensors in the order the split uses them.
   */
  public record Row(String logical, String mcore, Part part, When when, Split split, List<Source> sources,
      HeadRows heads, Use use, ModelConfig.Family family) {
    public Source source() {
      return sources.get(0);
    }

    public boolean lora() {
      return use == Use.NF4_AND_LORA;
    }

    public boolean nf4() {
      return use != Use.PLAIN;
    }

    /** The mcore module a LoRA factor hangs off: the key without {@code .weight}, e.g. {@code linear_qkv}. */
    public String loraModule() {
      String[] parts = mcore.split("\\.");
      return parts[parts.length - 2];
    }
  }

  // ---- the dimensions ----

  static final Dim H = c -> c.hiddenSize;
  static final Dim TWO_H = c -> 2 * c.hiddenSize;
  static final Dim VOCAB = c -> c.vocabSize;
  static final Dim Q_LORA = c -> c.qLoraRank;
  static final Dim KV_LORA = c -> c.kvLoraRank;
  static final Dim KV_A_ROWS = c -> c.kvLoraRank + c.qkRopeHeadDim;
  static final Dim Q_B_ROWS = c -> c.attentionHeads * c.qHeadDim();
  static final Dim KV_B_ROWS = c -> c.attentionHeads * c.kvHeadDim();
  static final Dim O_COLS = c -> c.attentionHeads * c.vHeadDim;
  static final Dim Q_HEAD = ModelConfig::qHeadDim;
  static final Dim KV_HEAD = ModelConfig::kvHeadDim;
  static final Dim NOPE = c -> c.qkNopeHeadDim;
  static final Dim ROPE = c -> c.qkRopeHeadDim;
  static final Dim V_HEAD = c -> c.vHeadDim;
  static final Dim ZERO = c -> 0;
  static final Dim DENSE_WIDTH = c -> c.intermediateSize;
  static final Dim SHARED_WIDTH = ModelConfig::sharedIntermediateSize;
  static final Dim EXPERT_WIDTH = c -> c.moeIntermediateSize;
  static final Dim EXPERTS = c -> c.routedExperts;
  static final Dim INDEX_ROWS = c -> c.indexHeads * c.indexHeadDim;
  static final Dim INDEX_HEAD = c -> c.indexHeadDim;
  static final Dim INDEX_HEADS = c -> c.indexHeads;
  // DeepSeek-V4 (docs/mapping.md §11.1)
  static final Dim ONE = c -> 1;
  static final Dim THREE = c -> 3;
  static final Dim FOUR = c -> 4;
  static final Dim HEADS = c -> c.attentionHeads;
  static final Dim D = c -> c.headDim;
  static final Dim HEADS_D = c -> c.attentionHeads * c.headDim;
  static final Dim O_ROWS = c -> c.oGroups * c.oLoraRank;
  static final Dim O_GROUP_COLS = c -> c.attentionHeads * c.headDim / c.oGroups;
  static final Dim HC = c -> c.hcMult;
  static final Dim HC_H = c -> c.hcMult * c.hiddenSize;
  static final Dim MIX = ModelConfig::mhcMix;
  static final Dim TOPK = c -> c.expertsPerToken;
  static final Dim TWO_INDEX_HEAD = c -> 2 * c.indexHeadDim;
  /** A compressor's window: its layer's compress ratio (the rows of {@code ape}). */
  static final Dim RATIO = (LayerDim) ModelConfig::compressRatio;
  /** A compressor's width: c(cr)·D, doubled ("overlap") when the ratio is 4. */
  static final Dim RATIO_WIDTH = (LayerDim) (c, l) -> (c.compressRatio(l) == 4 ? 2 : 1) * c.headDim;

  /** The rows, in rank-file order (V3's, then V4's; a config uses the rows of its family). */
  public static final List<Row> ROWS = new ArrayList<>();
  /** The family the rows being added belong to. */
  private static ModelConfig.Family adding = ModelConfig.Family.V3;

  static {
    Part p = Part.EMBEDDING;
    row(Use.PLAIN, "embedding", "embedding.word_embeddings.weight", p, Split.ROWS, matrix(HfNames.EMBED, VOCAB, H));

    p = Part.FINAL;
    row(Use.PLAIN, "final_norm", "decoder.final_layernorm.weight", p, When.WITHOUT_MTP, Split.REPLICATED,
        vector(HfNames.NORM, H));
    row(Use.PLAIN, "final_norm_with_mtp", "final_layernorm.weight", p, When.WITH_MTP, Split.REPLICATED,
        vector(HfNames.NORM, H));
    row(Use.NF4, "output", "output_layer.weight", p, Split.ROWS, matrix(HfNames.LM_HEAD, VOCAB, H));

    p = Part.MTP_INPUT;
    row(Use.PLAIN, "mtp_enorm", "mtp.layers.{m}.enorm.weight", p, Split.REPLICATED, vector("enorm.weight", H));
    row(Use.PLAIN, "mtp_hnorm", "mtp.layers.{m}.hnorm.weight", p, Split.REPLICATED, vector("hnorm.weight", H));
    row(Use.NF4_AND_LORA, "mtp_eh_proj", "mtp.layers.{m}.eh_proj.weight", p, Split.ROWS,
        matrix("eh_proj.weight", H, TWO_H));
    // One key for every MTP layer in the current names: the reference's dict keeps one copy (docs/mapping.md §3.8).
    row(Use.PLAIN, "mtp_embedding", "embedding.word_embeddings.weight", Part.MTP_EMBEDDING, Split.ROWS,
        matrix("embed_tokens.weight", VOCAB, H));
    row(Use.PLAIN, "mtp_final_norm", "mtp.final_layernorms.{m}.weight", Part.MTP_OUTPUT, Split.REPLICATED,
        vector("shared_head.norm.weight", H));

    p = Part.ATTENTION;
    row(Use.PLAIN, "input_norm", "input_layernorm.weight", p, Split.REPLICATED, vector("input_layernorm.weight", H));
    row(Use.PLAIN, "pre_mlp_norm", "pre_mlp_layernorm.weight", p, Split.REPLICATED,
        vector("post_attention_layernorm.weight", H));
    String a = "self_attn.";
    row(Use.NF4_AND_LORA, "qkv", "self_attention.linear_qkv.weight", p, Split.STACKED,
        matrix(a + "q_a_proj.weight", Q_LORA, H), matrix(a + "kv_a_proj_with_mqa.weight", KV_A_ROWS, H));
    row(Use.NF4_AND_LORA, "proj", "self_attention.linear_proj.weight", p, Split.COLUMNS,
        matrix(a + "o_proj.weight", H, O_COLS));
    row(Use.PLAIN, "q_norm", "self_attention.q_layernorm.weight", p, Split.REPLICATED,
        vector(a + "q_a_layernorm.weight", Q_LORA));
    row(Use.PLAIN, "kv_norm", "self_attention.kv_layernorm.weight", p, Split.REPLICATED,
        vector(a + "kv_a_layernorm.weight", KV_LORA));
    Source qb = matrix(a + "q_b_proj.weight", Q_B_ROWS, Q_LORA);
    Source kvb = matrix(a + "kv_b_proj.weight", KV_B_ROWS, KV_LORA);
    row(Use.NF4_AND_LORA, "q_up", "self_attention.linear_q_up_proj.weight", p, When.FUSED_MLA, Split.ROWS, qb);
    row(Use.NF4_AND_LORA, "kv_up", "self_attention.linear_kv_up_proj.weight", p, When.FUSED_MLA, Split.ROWS, kvb);
    heads("qk_nope", "self_attention.linear_qk_nope.weight", qb, new HeadRows(Q_HEAD, ZERO, NOPE));
    heads("qk_rope", "self_attention.linear_qk_rope.weight", qb, new HeadRows(Q_HEAD, NOPE, ROPE));
    heads("kv_nope", "self_attention.linear_kv_nope.weight", kvb, new HeadRows(KV_HEAD, ZERO, NOPE));
    heads("v", "self_attention.linear_v.weight", kvb, new HeadRows(KV_HEAD, NOPE, V_HEAD));
    String i = a + "indexer.";
    String d = "self_attention.dsa_indexer.";
    When dsa = When.DSA_INDEXER;
    row(Use.PLAIN, "indexer_wq_b", d + "wq_b.weight", p, dsa, Split.REPLICATED,
        matrix(i + "wq_b.weight", INDEX_ROWS, Q_LORA));
    row(Use.PLAIN, "indexer_wk", d + "wk.weight", p, dsa, Split.REPLICATED, matrix(i + "wk.weight", INDEX_HEAD, H));
    row(Use.PLAIN, "indexer_k_norm", d + "k_norm.weight", p, dsa, Split.REPLICATED,
        new Source(i + "k_norm.weight", INDEX_HEAD, null, DType.F32));
    row(Use.PLAIN, "indexer_k_norm_bias", d + "k_norm.bias", p, dsa, Split.REPLICATED,
        new Source(i + "k_norm.bias", INDEX_HEAD, null, DType.F32));
    row(Use.PLAIN, "indexer_weights_proj", d + "weights_proj.weight", p, dsa, Split.REPLICATED,
        matrix(i + "weights_proj.weight", INDEX_HEADS, H));

    gatedMlp(Part.DENSE_MLP, When.ALWAYS, "", "mlp.", "mlp.", DENSE_WIDTH);

    p = Part.MOE;
    row(Use.PLAIN, "router", "mlp.router.weight", p, Split.REPLICATED, matrix("mlp.gate.weight", EXPERTS, H));
    row(Use.PLAIN, "router_bias", "mlp.router.expert_bias", p, Split.REPLICATED,
        new Source("mlp.gate.e_score_correction_bias", EXPERTS, null, DType.F32));
    gatedMlp(p, When.SHARED_EXPERTS, "shared_", "mlp.shared_experts.", "mlp.shared_experts.", SHARED_WIDTH);
    gatedMlp(Part.EXPERT, When.ALWAYS, "expert_", "mlp.experts.local_experts.{l}.", "mlp.experts.{e}.", EXPERT_WIDTH);

    p = Part.GROUPED_EXPERTS;
    String e = "mlp.experts.{e}.";
    row(Use.NF4, "weight1", "mlp.experts.weight1", p, Split.GROUPED_W1,
        matrix(e + "gate_proj.weight", EXPERT_WIDTH, H), matrix(e + "up_proj.weight", EXPERT_WIDTH, H));
    row(Use.NF4, "weight2", "mlp.experts.weight2", p, Split.GROUPED_W2,
        matrix(e + "down_proj.weight", H, EXPERT_WIDTH));
  }

  static {
    v4Rows();
  }

  /**
   * DeepSeek-V4's rows (docs/mapping.md §11.3), in the order MindSpeed writes them. Every expert form is at expert-TP
   * 1: a rank file holds its experts whole, whatever its tp rank.
   */
  private static void v4Rows() {
    adding = ModelConfig.Family.V4;
    Use u = Use.PLAIN;
    row(u, "v4_embedding", "embedding.word_embeddings.weight", Part.EMBEDDING, Split.ROWS,
        matrix(HfNames.V4_EMBED, VOCAB, H));

    Part p = Part.FINAL;
    row(u, "v4_final_norm", "final_layernorm.weight", p, Split.REPLICATED, vector("norm.weight", H));
    row(u, "v4_output", "output_layer.weight", p, Split.ROWS, matrix("head.weight", VOCAB, H));
    hcHead(p, "v4_hc_head", "hc_head.");

    p = Part.MTP_INPUT;
    row(u, "v4_mtp_enorm", "mtp.layers.{m}.enorm.weight", p, Split.REPLICATED, vector("enorm.weight", H));
    row(u, "v4_mtp_hnorm", "mtp.layers.{m}.hnorm.weight", p, Split.REPLICATED, vector("hnorm.weight", H));
    row(u, "v4_mtp_eh_proj", "mtp.layers.{m}.eh_proj.weight", p, Split.SIDE_BY_SIDE, matrix("e_proj.weight", H, H),
        matrix("h_proj.weight", H, H));
    // The MTP stage's embedding copy (pp > 1): the MTP layer's own embedding where the checkpoint has one (Base),
    // else the model's, whatever the model type (as MindSpeed; §11.8)
    row(u, "v4_mtp_embedding", "embedding.word_embeddings.weight", Part.MTP_EMBEDDING, When.V4_NOT_BASE, Split.ROWS,
        new Source(HfNames.V4_EMBED, VOCAB, H, DType.BF16, true));
    row(u, "v4_mtp_embedding_base", "embedding.word_embeddings.weight", Part.MTP_EMBEDDING, When.V4_BASE,
        Split.ROWS, matrix(V4_BASE_MTP_EMBED, VOCAB, H));
    row(u, "v4_mtp_final_norm", "mtp.final_layernorms.{m}.weight", Part.MTP_OUTPUT, Split.REPLICATED,
        vector("norm.weight", H));
    hcHead(Part.MTP_OUTPUT, "v4_mtp_hc_head", "mtp.layers.{m}.hc_head.");

    p = Part.ATTENTION;
    row(u, "v4_input_norm", "input_layernorm.weight", p, Split.REPLICATED, vector("attn_norm.weight", H));
    row(u, "v4_pre_mlp_norm", "pre_mlp_layernorm.weight", p, Split.REPLICATED, vector("ffn_norm.weight", H));
    String a = "self_attention.";
    row(u, "v4_attn_sink", a + "attn_sink", p, Split.ROWS, f32("attn.attn_sink", HEADS, null));
    row(u, "v4_kv_norm", a + "kv_layernorm.weight", p, Split.REPLICATED, vector("attn.kv_norm.weight", D));
    row(u, "v4_q_norm", a + "q_layernorm.weight", p, Split.REPLICATED, vector("attn.q_norm.weight", Q_LORA));
    // wo_a's rows are group-major, so a dim-0 split gives rank t the groups of its heads (o_groups divisible by tp)
    row(u, "v4_o_down", a + "linear_o_down_proj.weight", p, Split.ROWS,
        matrix("attn.wo_a.weight", O_ROWS, O_GROUP_COLS));
    row(u, "v4_kv", a + "linear_kv.weight", p, Split.REPLICATED, matrix("attn.wkv.weight", D, H));
    row(u, "v4_o_up", a + "linear_o_up_proj.weight", p, Split.COLUMNS, matrix("attn.wo_b.weight", H, O_ROWS));
    row(u, "v4_q", a + "linear_q.weight", p, Split.REPLICATED, matrix("attn.wq_a.weight", Q_LORA, H));
    row(u, "v4_q_up", a + "linear_q_up_proj.weight", p, Split.ROWS, matrix("attn.wq_b.weight", HEADS_D, Q_LORA));
    compressor(When.COMPRESSOR, "v4_compressor", a + "compressor.", "attn.compressor.", RATIO, RATIO_WIDTH, D);
    compressor(When.CSA_INDEXER, "v4_indexer_compressor", a + "indexer.kv_compressor.", "attn.indexer.compressor.",
        FOUR, TWO_INDEX_HEAD, INDEX_HEAD);
    row(u, "v4_indexer_wq_b", a + "indexer.wq_b.weight", p, When.CSA_INDEXER, Split.REPLICATED,
        matrix("attn.indexer.wq_b.weight", INDEX_ROWS, Q_LORA));
    row(u, "v4_indexer_weights_proj", a + "indexer.weights_proj.weight", p, When.CSA_INDEXER, Split.REPLICATED,
        matrix("attn.indexer.weights_proj.weight", INDEX_HEADS, H));

    p = Part.MOE;
    row(u, "v4_router", "mlp.router.weight", p, Split.REPLICATED, matrix("ffn.gate.weight", EXPERTS, H));
    row(u, "v4_router_bias", "mlp.router.expert_bias", p, When.NOT_HASH, Split.REPLICATED,
        f32("ffn.gate.bias", EXPERTS, null));
    // int32 in DeepSeek's code; the dtype is whatever the checkpoint stores and passes through unchanged
    row(u, "v4_router_tid2eid", "mlp.router.tid2eid", p, When.HASH, Split.REPLICATED,
        new Source("ffn.gate.tid2eid", VOCAB, TOPK, DType.I32));
    String sh = "ffn.shared_experts.";
    row(u, "v4_shared_fc1", "mlp.shared_experts.linear_fc1.weight", p, Split.GATED,
        matrix(sh + "w1.weight", SHARED_WIDTH, H), matrix(sh + "w3.weight", SHARED_WIDTH, H));
    row(u, "v4_shared_fc2", "mlp.shared_experts.linear_fc2.weight", p, Split.COLUMNS,
        matrix(sh + "w2.weight", H, SHARED_WIDTH));
    for (String[] m : new String[][] {{"attn_mhc.", "hc_attn_"}, {"mlp_mhc.", "hc_ffn_"}}) {
      String logical = "v4_" + m[0].replace('.', '_');
      row(u, logical + "base", m[0] + "hc_base", p, Split.REPLICATED, f32(m[1] + "base", MIX, null));
      row(u, logical + "fn", m[0] + "hc_fn.weight", p, Split.REPLICATED, f32(m[1] + "fn", MIX, HC_H));
      row(u, logical + "scale", m[0] + "hc_scale", p, Split.REPLICATED, f32(m[1] + "scale", THREE, null));
    }

    // w1 is the gate, w3 the up projection (DeepSeek's silu(w1 x) * w3 x)
    String e = "ffn.experts.{e}.";
    String le = "mlp.experts.local_experts.{l}.";
    row(u, "v4_expert_fc1", le + "linear_fc1.weight", Part.EXPERT, When.V4_EXPERT_TP_1, Split.STACKED,
        matrix(e + "w1.weight", EXPERT_WIDTH, H), matrix(e + "w3.weight", EXPERT_WIDTH, H));
    row(u, "v4_expert_fc2", le + "linear_fc2.weight", Part.EXPERT, When.V4_EXPERT_TP_1, Split.REPLICATED,
        matrix(e + "w2.weight", H, EXPERT_WIDTH));
    row(u, "v4_expert_fc1_split", le + "linear_fc1.weight", Part.EXPERT, When.V4_EXPERT_TP_TP, Split.GATED,
        matrix(e + "w1.weight", EXPERT_WIDTH, H), matrix(e + "w3.weight", EXPERT_WIDTH, H));
    row(u, "v4_expert_fc2_split", le + "linear_fc2.weight", Part.EXPERT, When.V4_EXPERT_TP_TP, Split.COLUMNS,
        matrix(e + "w2.weight", H, EXPERT_WIDTH));
    row(u, "v4_weight1", "mlp.experts.weight1", Part.GROUPED_EXPERTS, Split.GROUPED_W1,
        matrix(e + "w1.weight", EXPERT_WIDTH, H), matrix(e + "w3.weight", EXPERT_WIDTH, H));
    row(u, "v4_weight2", "mlp.experts.weight2", Part.GROUPED_EXPERTS, Split.GROUPED_W2,
        matrix(e + "w2.weight", H, EXPERT_WIDTH));
    adding = ModelConfig.Family.V3;
  }

  /** The three f32 tensors of an mHC head: base [hc], fn [hc, hc·H], scale [1]. */
  private static void hcHead(Part p, String logical, String mcore) {
    row(Use.PLAIN, logical + "_base", mcore + "hc_base", p, Split.REPLICATED, f32("hc_head_base", HC, null));
    row(Use.PLAIN, logical + "_fn", mcore + "hc_fn.weight", p, Split.REPLICATED, f32("hc_head_fn", HC, HC_H));
    row(Use.PLAIN, logical + "_scale", mcore + "hc_scale", p, Split.REPLICATED, f32("hc_head_scale", ONE, null));
  }

  /** A V4 compressor (ape f32 [ratio, width], norm [normDim], wgate and wkv [width, H]), replicated. */
  private static void compressor(When when, String logical, String mcore, String hf, Dim ratio, Dim width,
      Dim normDim) {
    Part p = Part.ATTENTION;
    row(Use.PLAIN, logical + "_ape", mcore + "ape", p, when, Split.REPLICATED, f32(hf + "ape", ratio, width));
    row(Use.PLAIN, logical + "_norm", mcore + "norm.weight", p, when, Split.REPLICATED,
        vector(hf + "norm.weight", normDim));
    row(Use.PLAIN, logical + "_wgate", mcore + "wgate.weight", p, when, Split.REPLICATED,
        matrix(hf + "wgate.weight", width, H));
    row(Use.PLAIN, logical + "_wkv", mcore + "wkv.weight", p, when, Split.REPLICATED,
        matrix(hf + "wkv.weight", width, H));
  }

  private static Source f32(String name, Dim rows, Dim cols) {
    return new Source(name, rows, cols, DType.F32);
  }

  /** A V4 Base checkpoint's MTP layers' own embedding and head (docs/mapping.md §11.8). */
  public static final String V4_BASE_MTP_EMBED = "emb.tok_emb.weight";
  public static final String V4_BASE_MTP_HEAD = "head.weight";

  /** HF tensors of an MTP layer HF → mcore does not convert: mcore shares {@code output_layer} (§3.8). */
  public static final List<Source> MTP_UNCONVERTED = List.of(matrix("shared_head.head.weight", VOCAB, H));

  private TensorMapping() {}

  /** The rows of a part that apply to this config and layout, in order. */
  public static List<Row> rows(Part part, ModelConfig c, LayoutOptions o) {
    List<Row> out = new ArrayList<>();
    for (Row r : ROWS) {
      if (r.part == part && r.family == c.family && r.when.holds(c, o)) {
        out.add(r);
      }
    }
    return out;
  }

  /** The row of a logical name. */
  public static Row row(String logical) {
    for (Row r : ROWS) {
      if (r.logical.equals(logical)) {
        return r;
      }
    }
    throw new IllegalArgumentException("no mapping row " + logical);
  }

  /** The logical names of the rows {@code --qlora-nf4} quantises. */
  static List<String> nf4Rows() {
    List<String> out = new ArrayList<>();
    ROWS.stream().filter(Row::nf4).forEach(r -> out.add(r.logical));
    return out;
  }

  /** Whether a key is a grouped-GEMM expert tensor ({@code mlp.experts.weight1/2}), whose LoRA is per expert. */
  static boolean isGroupedExperts(String key) {
    for (Row r : ROWS) {
      if (r.part == Part.GROUPED_EXPERTS && key.endsWith(r.mcore)) {
        return true;
      }
    }
    return false;
  }

  /** The current key template of every row, by logical name. */
  static Map<String, String> currentKeys() {
    Map<String, String> out = new LinkedHashMap<>();
    ROWS.forEach(r -> out.put(r.logical, r.mcore));
    return out;
  }

  // ---- building the table ----

  private static void gatedMlp(Part part, When when, String logicalPrefix, String mcorePrefix, String hfPrefix,
      Dim width) {
    row(Use.NF4_AND_LORA, logicalPrefix + "fc1", mcorePrefix + "linear_fc1.weight", part, when, Split.GATED,
        matrix(hfPrefix + "gate_proj.weight", width, H), matrix(hfPrefix + "up_proj.weight", width, H));
    row(Use.NF4_AND_LORA, logicalPrefix + "fc2", mcorePrefix + "linear_fc2.weight", part, when, Split.COLUMNS,
        matrix(hfPrefix + "down_proj.weight", H, width));
  }

  private static void heads(String logical, String mcore, Source src, HeadRows heads) {
    ROWS.add(new Row(logical, mcore, Part.ATTENTION, When.SPLIT_MLA, Split.HEADS, List.of(src), heads, Use.NF4,
        adding));
  }

  private static void row(Use use, String logical, String mcore, Part part, Split split, Source... sources) {
    row(use, logical, mcore, part, When.ALWAYS, split, sources);
  }

  private static void row(Use use, String logical, String mcore, Part part, When when, Split split,
      Source... sources) {
    ROWS.add(new Row(logical, mcore, part, when, split, List.of(sources), null, use, adding));
  }

  private static Source matrix(String name, Dim rows, Dim cols) {
    return new Source(name, rows, cols, DType.BF16);
  }

  private static Source vector(String name, Dim n) {
    return new Source(name, n, null, DType.BF16);
  }
}
