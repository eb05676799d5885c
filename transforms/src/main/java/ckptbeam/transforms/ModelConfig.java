package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;

/**
 * The model dimensions of a DeepSeek-V3-architecture checkpoint, read from its HF {@code config.json} (docs/mapping.md
 * §1). The reference converter hard-codes them for the 671B model; we read them so that any size converts.
 */
public final class ModelConfig implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();

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

  /** Reads the model dimensions from an HF {@code config.json}. */
  public static ModelConfig read(String path) throws IOException {
    if (!CheckpointFiles.exists(path)) {
      throw new IOException(path + ": no such file (the model dimensions are read from it)");
    }
    return parse(path, CheckpointFiles.readSmallFile(path, 16L << 20));
  }

  private ModelConfig(Reader r) throws IOException {
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
    fp8 = r.root.hasNonNull("quantization_config");
    JsonNode q = r.root.get("quantization_config");
    JsonNode block = q == null ? null : q.get("weight_block_size");
    if (fp8 && q.has("quant_method") && !"fp8".equals(q.get("quant_method").asText())) {
      throw r.error("quantization_config", "has quant_method " + q.get("quant_method") + "; only DeepSeek's \"fp8\" "
          + "block quantisation can be read");
    }
    if (fp8 && q.has("fmt") && !"e4m3".equals(q.get("fmt").asText())) {
      throw r.error("quantization_config.fmt", "is " + q.get("fmt") + "; only \"e4m3\" (safetensors F8_E4M3, "
          + "DeepSeek's release format) can be dequantised");
    }
    if (fp8 && q.hasNonNull("scale_fmt") && !"ue8m0".equals(q.get("scale_fmt").asText())) {
      throw r.error("quantization_config.scale_fmt", "is " + q.get("scale_fmt") + "; only \"ue8m0\" (V3.1's "
          + "power-of-two scales, stored as float32) is known, or no scale_fmt");
    }
    if (block != null && !(block.isArray() && block.size() == 2 && block.get(0).canConvertToInt()
        && block.get(1).canConvertToInt() && block.get(0).asInt() > 0 && block.get(1).asInt() > 0)) {
      throw r.error("quantization_config", "has weight_block_size " + block + ", not two positive integers");
    }
    JsonNode type = r.root.get("model_type");
    boolean v32 = type != null && "deepseek_v32".equals(type.asText());
    if (v32 || r.root.has("index_n_heads")) {
      indexHeads = r.positive("index_n_heads");
      indexHeadDim = r.positive("index_head_dim");
    } else {
      indexHeads = 0;
      indexHeadDim = 0;
    }
    fp8BlockRows = block == null ? 128 : block.get(0).asInt();
    fp8BlockCols = block == null ? 128 : block.get(1).asInt();
    if (firstKDenseReplace > hiddenLayers) {
      throw r.error("first_k_dense_replace", "is " + firstKDenseReplace + ", more than num_hidden_layers "
          + hiddenLayers);
    }
  }

  private ModelConfig(ModelConfig c, int hiddenLayers, int firstKDenseReplace, int nextnPredictLayers) {
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
    return new ModelConfig(this, hiddenLayers, firstKDenseReplace, nextnPredictLayers);
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
    return indexHeads > 0;
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

    IOException error(String field, String what) {
      return new IOException(source + ": field \"" + field + "\" " + what);
    }
  }
}
