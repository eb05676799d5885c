package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The model dimensions of a DeepSeek checkpoint, read from its HF {@code config.json} (docs/mapping.md §1; V4: §11).
 * The reference's V3 converter hard-codes them for the 671B model; we read them so that any size converts.
 */
public final class ModelConfig implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();

  /** The architecture generation: which mapping rows and HF names apply. */
  public enum Family {
    /** DeepSeek-V3, V3.1, V3.2 (with its DSA indexer) and Kimi-K2: {@code model.layers.N.…} names. */
    V3,
    /** DeepSeek-V4 (Flash, Pro, Base; {@code model_type} {@code deepseek_v4}): native {@code layers.N.…} names. */
    V4
  }

  public final Family family;

  public final long hiddenSize;
  public final long vocabSize;
  public final long intermediateSize;
  public final long moeIntermediateSize;
  public final long routedExperts;
  public final long sharedExperts;
  public final long attentionHeads;
  public final long qLoraRank;
  public final long kvLoraRank;
  public final long qkNopeHeadDim;
  public final long qkRopeHeadDim;
  public final long vHeadDim;
  public final int hiddenLayers;
  public final int firstKDenseReplace;
  public final int nextnPredictLayers;
  /** Whether the checkpoint declares DeepSeek's FP8 block quantisation ({@code quantization_config}). */
  public final boolean fp8;
  /**
   * DeepSeek-V3.2's DSA "lightning indexer" in every layer ({@code model_type} {@code deepseek_v32}, or
   * {@code index_n_heads} given): {@code index_n_heads} heads of {@code index_head_dim}; 0 without one.
   */
  public final long indexHeads;
  public final long indexHeadDim;
  /** {@code quantization_config.weight_block_size}: rows and columns of one FP8 scale block. */
  public final int fp8BlockRows;
  public final int fp8BlockCols;

  // ---- DeepSeek-V4 only (0 or empty for V3) ----
  /** {@code head_dim}: the one latent KV head, K = V (D). */
  public final long headDim;
  /** {@code o_lora_rank} (r_o) and {@code o_groups} (G): the grouped low-rank output projection. */
  public final long oLoraRank;
  public final long oGroups;
  /** {@code hc_mult}: the mHC expansion (hc). */
  public final long hcMult;
  /** {@code num_experts_per_tok} (k): columns of a hash layer's {@code tid2eid}. */
  public final long expertsPerToken;
  /** {@code num_hash_layers}: HF layers below it route by {@code tid2eid} instead of a bias. */
  public final int hashLayers;
  /** {@code compress_ratios} per HF decoder layer (the MTP entries are never consulted, V4 spec §1.3). */
  private final int[] compressRatios;
  /** V4: config.json's int, float, string, bool and list fields in file order (the rank files' args copy them). */
  private final LinkedHashMap<String, Object> scalarFields;
  /**
   * V4: whether the checkpoint's MTP layers have their own embedding ({@code mtp.{m}.emb.tok_emb.weight}, a Base
   * checkpoint): the MTP stage's embedding copy is then read from it, whatever the model type (V4 spec §3.9). Not in
   * config.json: the planner sets it from the HF index, or from the model type of an mcore checkpoint's args.
   */
  public final boolean ownMtpEmbedding;

  /** Reads the model dimensions from an HF {@code config.json}. */
  public static ModelConfig read(String path) throws IOException {
    if (!CheckpointFiles.exists(path)) {
      throw new IOException(path + ": no such file (the model dimensions are read from it)");
    }
    return parse(path, CheckpointFiles.readSmallFile(path, 16L << 20));
  }

  private ModelConfig(Reader r) throws IOException {
    ownMtpEmbedding = false;
    JsonNode type = r.root.get("model_type");
    family = type != null && "deepseek_v4".equals(type.asText()) ? Family.V4 : Family.V3;
    if (family == Family.V4) {
      hiddenSize = r.positive("hidden_size");
      vocabSize = r.positive("vocab_size");
      intermediateSize = 0;
      moeIntermediateSize = r.positive("moe_intermediate_size");
      routedExperts = r.positive("n_routed_experts");
      sharedExperts = r.positive("n_shared_experts");
      attentionHeads = r.positive("num_attention_heads");
      qLoraRank = r.positive("q_lora_rank");
      kvLoraRank = 0;
      qkNopeHeadDim = 0;
      qkRopeHeadDim = r.positive("qk_rope_head_dim");
      vHeadDim = 0;
      hiddenLayers = (int) r.positive("num_hidden_layers");
      firstKDenseReplace = 0;
      nextnPredictLayers = (int) r.nonNegative("num_nextn_predict_layers");
      headDim = r.positive("head_dim");
      oLoraRank = r.positive("o_lora_rank");
      oGroups = r.positive("o_groups");
      hcMult = r.positive("hc_mult");
      expertsPerToken = r.positive("num_experts_per_tok");
      indexHeads = r.positive("index_n_heads");
      indexHeadDim = r.positive("index_head_dim");
      hashLayers = (int) r.nonNegative("num_hash_layers");
      if (hashLayers > hiddenLayers) {
        throw r.error("num_hash_layers", "is " + hashLayers + ", more than num_hidden_layers " + hiddenLayers);
      }
      if (attentionHeads % oGroups != 0) {
        throw r.error("o_groups", "is " + oGroups + ", which does not divide num_attention_heads " + attentionHeads);
      }
      compressRatios = r.compressRatios(hiddenLayers, nextnPredictLayers);
      scalarFields = r.scalarFields();
      JsonNode tie = r.root.get("tie_word_embeddings");
      if (tie != null && tie.asBoolean()) {
        throw r.error("tie_word_embeddings", "is true; no DeepSeek-V4 release ties its embedding and head, and the "
            + "V4 mapping needs head.weight");
      }
      // the FP8 + MXFP4 release: FP8 projections with e8m0 block scales, MXFP4 routed experts (§11.6)
      int[] block = r.fp8Block();
      fp8 = block != null;
      fp8BlockRows = block == null ? 128 : block[0];
      fp8BlockCols = block == null ? 128 : block[1];
      return;
    }
    headDim = 0;
    oLoraRank = 0;
    oGroups = 0;
    hcMult = 0;
    expertsPerToken = 0;
    hashLayers = 0;
    compressRatios = new int[0];
    scalarFields = new LinkedHashMap<>();
    hiddenSize = r.positive("hidden_size");
    vocabSize = r.positive("vocab_size");
    intermediateSize = r.positive("intermediate_size");
    moeIntermediateSize = r.positive("moe_intermediate_size");
    routedExperts = r.positive("n_routed_experts");
    sharedExperts = r.nonNegative("n_shared_experts");
    attentionHeads = r.positive("num_attention_heads");
    qLoraRank = r.positive("q_lora_rank");
    kvLoraRank = r.positive("kv_lora_rank");
    qkNopeHeadDim = r.positive("qk_nope_head_dim");
    qkRopeHeadDim = r.positive("qk_rope_head_dim");
    vHeadDim = r.positive("v_head_dim");
    hiddenLayers = (int) r.positive("num_hidden_layers");
    firstKDenseReplace = (int) r.nonNegative("first_k_dense_replace");
    nextnPredictLayers = (int) r.nonNegative("num_nextn_predict_layers");
    JsonNode freq = r.root.get("moe_layer_freq");
    if (freq != null && !(freq.canConvertToInt() && freq.asInt() == 1)) {
      throw r.error("moe_layer_freq", "is " + freq + "; only 1 (every layer from first_k_dense_replace on is MoE) "
          + "is supported");
    }
    int[] block = r.fp8Block();
    fp8 = block != null;
    boolean v32 = type != null && "deepseek_v32".equals(type.asText());
    if (v32 || r.root.has("index_n_heads")) {
      indexHeads = r.positive("index_n_heads");
      indexHeadDim = r.positive("index_head_dim");
    } else {
      indexHeads = 0;
      indexHeadDim = 0;
    }
    fp8BlockRows = block == null ? 128 : block[0];
    fp8BlockCols = block == null ? 128 : block[1];
    if (firstKDenseReplace > hiddenLayers) {
      throw r.error("first_k_dense_replace", "is " + firstKDenseReplace + ", more than num_hidden_layers "
          + hiddenLayers);
    }
  }

  private ModelConfig(ModelConfig c, int hiddenLayers, int firstKDenseReplace, int nextnPredictLayers,
      boolean ownMtpEmbedding) {
    this.ownMtpEmbedding = ownMtpEmbedding;
    family = c.family;
    headDim = c.headDim;
    oLoraRank = c.oLoraRank;
    oGroups = c.oGroups;
    hcMult = c.hcMult;
    expertsPerToken = c.expertsPerToken;
    hashLayers = c.hashLayers;
    compressRatios = c.compressRatios;
    scalarFields = c.scalarFields;
    hiddenSize = c.hiddenSize;
    vocabSize = c.vocabSize;
    intermediateSize = c.intermediateSize;
    moeIntermediateSize = c.moeIntermediateSize;
    routedExperts = c.routedExperts;
    sharedExperts = c.sharedExperts;
    attentionHeads = c.attentionHeads;
    qLoraRank = c.qLoraRank;
    kvLoraRank = c.kvLoraRank;
    qkNopeHeadDim = c.qkNopeHeadDim;
    qkRopeHeadDim = c.qkRopeHeadDim;
    vHeadDim = c.vHeadDim;
    fp8 = c.fp8;
    indexHeads = c.indexHeads;
    indexHeadDim = c.indexHeadDim;
    fp8BlockRows = c.fp8BlockRows;
    fp8BlockCols = c.fp8BlockCols;
    this.hiddenLayers = hiddenLayers;
    this.firstKDenseReplace = firstKDenseReplace;
    this.nextnPredictLayers = nextnPredictLayers;
  }

  /** The same dimensions with another layer structure (mcore → HF renumbers layers 0 … R-1, §4.1). */
  public ModelConfig withLayers(int hiddenLayers, int firstKDenseReplace, int nextnPredictLayers) {
    return new ModelConfig(this, hiddenLayers, firstKDenseReplace, nextnPredictLayers, ownMtpEmbedding);
  }

  /**
   * The HF name of the embedding a Base checkpoint's MTP stage copy is read from with {@code mtpLayers} MTP layers:
   * the last MTP layer's (each layer writes the same key, the last one's value stays; V4 spec §3.9).
   */
  public String ownMtpEmbeddingName(int mtpLayers) {
    return HfNames.layer(this, hiddenLayers + mtpLayers - 1, TensorMapping.V4_BASE_MTP_EMBED);
  }

  /**
   * The model as an HF checkpoint holding {@code hfTensors} has it with {@code mtpLayers} MTP layers converted: a V4
   * checkpoint whose (last) MTP layer has its own embedding gives the MTP stage's copy from it.
   */
  public ModelConfig withMtpEmbeddingOf(java.util.Set<String> hfTensors, int mtpLayers) {
    return v4() && mtpLayers > 0 ? withOwnMtpEmbedding(hfTensors.contains(ownMtpEmbeddingName(mtpLayers))) : this;
  }

  /** The same model, whose MTP layers have ({@code own}) or lack their own embedding ({@link #ownMtpEmbedding}). */
  public ModelConfig withOwnMtpEmbedding(boolean own) {
    return new ModelConfig(this, hiddenLayers, firstKDenseReplace, nextnPredictLayers, own);
  }

  /** Parses {@code config.json} bytes; {@code source} names the file in error messages. */
  public static ModelConfig parse(String source, byte[] json) throws IOException {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (IOException e) {
      throw new IOException(source + ": not valid JSON (" + e.getMessage().split("\n")[0] + ")");
    }
    if (root == null || !root.isObject()) {
      throw new IOException(source + ": not a JSON object");
    }
    return new ModelConfig(new Reader(source, root));
  }

  /** Whether every layer has DeepSeek-V3.2's DSA indexer. */
  public boolean dsaIndexer() {
    return family == Family.V3 && indexHeads > 0;
  }

  public boolean v4() {
    return family == Family.V4;
  }

  /** V4: the compress ratio of HF decoder layer {@code layer}; 0 (no compressor) for MTP layers and for V3. */
  public int compressRatio(int layer) {
    return layer >= 0 && layer < hiddenLayers && layer < compressRatios.length ? compressRatios[layer] : 0;
  }

  /** V4: whether HF decoder layer {@code layer} routes by hash ({@code tid2eid}); never an MTP layer. */
  public boolean hashLayer(int layer) {
    return layer >= 0 && layer < hiddenLayers && layer < hashLayers;
  }

  /** V4: the compress ratios as config.json gives them after dropping a reserved {@code [0, 0]} suffix. */
  public int[] compressRatios() {
    return compressRatios.clone();
  }

  /**
   * The name of a quantised weight's block scales: V3 {@code <weight>_scale_inv}; V4 {@code <module>.scale} (a
   * trailing {@code .weight} replaced, or {@code .scale} appended to a bare name, docs/mapping.md §11.6).
   */
  public String scaleName(String weight) {
    if (!v4()) {
      return weight + "_scale_inv";
    }
    return (weight.endsWith(".weight") ? weight.substring(0, weight.length() - 7) : weight) + ".scale";
  }

  /** The weight a scale name belongs to among {@code names}, or null when it is not a scale of one of them. */
  public String weightOfScale(String name, java.util.function.Predicate<String> names) {
    String suffix = v4() ? ".scale" : "_scale_inv";
    if (!name.endsWith(suffix)) {
      return null;
    }
    String base = name.substring(0, name.length() - suffix.length());
    if (!v4()) {
      return names.test(base) ? base : null;
    }
    return names.test(base + ".weight") ? base + ".weight" : names.test(base) ? base : null;
  }

  /** Whether a name has the form of a block-scale tensor in this family's naming. */
  public boolean isScaleName(String name) {
    return name.endsWith(v4() ? ".scale" : "_scale_inv");
  }

  /** V4: config.json's int, float, string, bool and list fields, in file order (dicts and nulls left out). */
  public Map<String, Object> scalarFields() {
    return Collections.unmodifiableMap(scalarFields);
  }

  /** V4: {@code mix = (2 + hc)·hc}, the rows of an mHC matrix. */
  public long mhcMix() {
    return (2 + hcMult) * hcMult;
  }

  /** Routed and shared expert width: {@code n_shared_experts * moe_intermediate_size}. */
  public long sharedIntermediateSize() {
    return sharedExperts * moeIntermediateSize;
  }

  /** Rows of mcore {@code linear_qkv}: q_a (r_q) then kv_a (r_kv + d_rope). */
  public long qkvRows() {
    return qLoraRank + kvLoraRank + qkRopeHeadDim;
  }

  /** q/k head dim with RoPE: d_nope + d_rope. */
  public long qHeadDim() {
    return qkNopeHeadDim + qkRopeHeadDim;
  }

  /** k/v head dim of kv_b_proj: d_nope + d_v. */
  public long kvHeadDim() {
    return qkNopeHeadDim + vHeadDim;
  }

  private static final class Reader {
    final String source;
    final JsonNode root;

    Reader(String source, JsonNode root) {
      this.source = source;
      this.root = root;
    }

    long nonNegative(String field) throws IOException {
      JsonNode n = root.get(field);
      if (n == null) {
        throw error(field, "is missing");
      }
      if (n.isNull()) {
        throw error(field, "is null; this converter needs a value (MLA without q-LoRA is not supported)");
      }
      if (!n.isIntegralNumber() || !n.canConvertToInt() || n.asLong() < 0) {
        throw error(field, "is " + n + ", not a non-negative integer");
      }
      return n.asLong();
    }

    long positive(String field) throws IOException {
      long v = nonNegative(field);
      if (v == 0) {
        throw error(field, "is 0; it must be positive");
      }
      return v;
    }

    LinkedHashMap<String, Object> scalarFields() {
      LinkedHashMap<String, Object> out = new LinkedHashMap<>();
      root.fields().forEachRemaining(e -> {
        Object v = plain(e.getValue());
        if (v != null) {
          out.put(e.getKey(), v);
        }
      });
      return out;
    }

    /** A JSON scalar or list as Long, Double, String, Boolean or ArrayList; null for objects and nulls. */
    private static Object plain(JsonNode n) {
      if (n.isIntegralNumber()) {
        return n.canConvertToLong() ? (Object) n.asLong() : n.bigIntegerValue();
      }
      if (n.isNumber()) {
        return n.asDouble();
      }
      if (n.isTextual()) {
        return n.asText();
      }
      if (n.isBoolean()) {
        return n.asBoolean();
      }
      if (n.isArray()) {
        ArrayList<Object> list = new ArrayList<>();
        n.forEach(x -> list.add(plain(x)));
        return list;
      }
      return null;
    }

    /** {@code quantization_config}'s block size, after checking it is DeepSeek's FP8; null without one. */
    int[] fp8Block() throws IOException {
      boolean fp8 = root.hasNonNull("quantization_config");
      JsonNode q = root.get("quantization_config");
      JsonNode block = q == null ? null : q.get("weight_block_size");
      if (fp8 && q.has("quant_method") && !"fp8".equals(q.get("quant_method").asText())) {
        throw error("quantization_config", "has quant_method " + q.get("quant_method") + "; only DeepSeek's \"fp8\" "
            + "block quantisation can be read");
      }
      if (fp8 && q.has("fmt") && !"e4m3".equals(q.get("fmt").asText())) {
        throw error("quantization_config.fmt", "is " + q.get("fmt") + "; only \"e4m3\" (safetensors F8_E4M3, "
            + "DeepSeek's release format) can be dequantised");
      }
      if (fp8 && q.hasNonNull("scale_fmt") && !"ue8m0".equals(q.get("scale_fmt").asText())) {
        throw error("quantization_config.scale_fmt", "is " + q.get("scale_fmt") + "; only \"ue8m0\" (V3.1's "
            + "power-of-two scales, stored as float32) is known, or no scale_fmt");
      }
      if (block != null && !(block.isArray() && block.size() == 2 && block.get(0).canConvertToInt()
          && block.get(1).canConvertToInt() && block.get(0).asInt() > 0 && block.get(1).asInt() > 0)) {
        throw error("quantization_config", "has weight_block_size " + block + ", not two positive integers");
      }
      if (!fp8) {
        return null;
      }
      return block == null ? new int[] {128, 128} : new int[] {block.get(0).asInt(), block.get(1).asInt()};
    }

    /**
     * V4 §1.3: one ratio per decoder and MTP layer (a {@code -0731} config's two reserved trailing zeros dropped),
     * each 0 (no compressor), 4 (compressor and indexer) or another integer of at least 2 (compressor only).
     */
    int[] compressRatios(int layers, int mtp) throws IOException {
      JsonNode n = root.get("compress_ratios");
      if (n == null || !n.isArray()) {
        throw error("compress_ratios", n == null ? "is missing" : "is " + n + ", not a list");
      }
      int len = n.size();
      if (len == layers + mtp + 2 && n.get(len - 1).asInt(-1) == 0 && n.get(len - 2).asInt(-1) == 0) {
        len -= 2;
      }
      if (len != layers + mtp) {
        throw error("compress_ratios", "has " + n.size() + " entries; it needs one per layer: num_hidden_layers "
            + layers + " + num_nextn_predict_layers " + mtp);
      }
      int[] out = new int[len];
      for (int i = 0; i < len; i++) {
        JsonNode v = n.get(i);
        if (!v.isIntegralNumber() || !v.canConvertToInt() || v.asInt() < 0 || v.asInt() == 1) {
          throw error("compress_ratios", "entry " + i + " is " + v + "; a ratio is 0 (no compressor) or an integer"
              + " of at least 2 (the trainer reads 1 as no compressor, the converter as one)");
        }
        out[i] = v.asInt();
      }
      return out;
    }

    IOException error(String field, String what) {
      return new IOException(source + ": field \"" + field + "\" " + what);
    }
  }
}
