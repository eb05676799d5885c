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
    GROUPED_W2
  }

  /** When a row applies, beyond its part. */
  public enum When {
    ALWAYS, WITHOUT_MTP, WITH_MTP, FUSED_MLA, SPLIT_MLA, DSA_INDEXER, SHARED_EXPERTS;

    /** Whether the row exists in a checkpoint of this config whatever the layout (layout conditions hold). */
    boolean holdsForConfig(ModelConfig c) {
      switch (this) {
        case DSA_INDEXER: return c.dsaIndexer();
        case SHARED_EXPERTS: return c.sharedExperts > 0;
        default: return true;
      }
    }

    boolean holds(ModelConfig c, LayoutOptions o) {
      switch (this) {
        case WITHOUT_MTP: return o.mtpLayers() == 0;
        case WITH_MTP: return o.mtpLayers() > 0;
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

  /** A dimension of the model, read from its config. */
  public interface Dim extends ToLongFunction<ModelConfig> {}

  /** One HF tensor a row reads: its name (relative to the layer, except for global rows), shape and dtype. */
  public record Source(String name, Dim rows, Dim cols, DType dtype) {
    /** Shape [rows] for a vector (cols null), else [rows, cols]. */
    public long[] shape(ModelConfig c) {
      return cols == null ? new long[] {rows.applyAsLong(c)} : new long[] {rows.applyAsLong(c), cols.applyAsLong(c)};
    }

    /**
     * The full HF name in HF layer {@code layer} (a global row's name as it is when layer is negative), with the
     * expert index filled in for {@code {e}}.
     */
    public String hfName(int layer, long expert) {
      if (layer < 0) {
        return name;
      }
      return HfNames.layer(layer, expert < 0 ? name : name.replace("{e}", Long.toString(expert)));
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
      HeadRows heads, Use use) {
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

  /** The rows, in rank-file order. */
  public static final List<Row> ROWS = new ArrayList<>();

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

  /** HF tensors of an MTP layer HF → mcore does not convert: mcore shares {@code output_layer} (§3.8). */
  public static final List<Source> MTP_UNCONVERTED = List.of(matrix("shared_head.head.weight", VOCAB, H));

  private TensorMapping() {}

  /** The rows of a part that apply to this config and layout, in order. */
  public static List<Row> rows(Part part, ModelConfig c, LayoutOptions o) {
    List<Row> out = new ArrayList<>();
    for (Row r : ROWS) {
      if (r.part == part && r.when.holds(c, o)) {
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
    ROWS.add(new Row(logical, mcore, Part.ATTENTION, When.SPLIT_MLA, Split.HEADS, List.of(src), heads, Use.NF4));
  }

  private static void row(Use use, String logical, String mcore, Part part, Split split, Source... sources) {
    row(use, logical, mcore, part, When.ALWAYS, split, sources);
  }

  private static void row(Use use, String logical, String mcore, Part part, When when, Split split,
      Source... sources) {
    ROWS.add(new Row(logical, mcore, part, when, split, List.of(sources), null, use));
  }

  private static Source matrix(String name, Dim rows, Dim cols) {
    return new Source(name, rows, cols, DType.BF16);
  }

  private static Source vector(String name, Dim n) {
    return new Source(name, n, null, DType.BF16);
  }
}
