package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorBytes;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.transforms.HfInventory;
import ckptbeam.transforms.HfNames;
import ckptbeam.transforms.ModelConfig;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.stream.Stream;

/**
 * {@code ckptbeam make-tiny-model}: a seeded synthetic HF checkpoint with the real DeepSeek-V3 (or, {@code --v4}, V4)
 * tensor names, shapes and dtypes (docs/formats.md §4.2), tiny by default, any size with the size options. Values are
 * streamed out as they are generated, so multi-GB models need no memory.
 */
public final class TinyModel {
  private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

  /** Size options and their tiny defaults (each divisible by tp, ep up to 4). */
  static final Map<String, Long> DEFAULTS = new LinkedHashMap<>();

  static {
    DEFAULTS.put("hidden-size", 64L);
    DEFAULTS.put("vocab-size", 128L);
    DEFAULTS.put("intermediate-size", 96L);
    DEFAULTS.put("moe-intermediate-size", 32L);
    DEFAULTS.put("experts", 8L);
    DEFAULTS.put("shared-experts", 1L);
    DEFAULTS.put("heads", 4L);
    DEFAULTS.put("q-lora-rank", 32L);
    DEFAULTS.put("kv-lora-rank", 16L);
    DEFAULTS.put("qk-nope-head-dim", 16L);
    DEFAULTS.put("qk-rope-head-dim", 8L);
    DEFAULTS.put("v-head-dim", 16L);
    DEFAULTS.put("layers", 4L);
    DEFAULTS.put("first-k-dense", 1L);
    DEFAULTS.put("mtp-layers", 1L);
    DEFAULTS.put("shards", 3L);
    DEFAULTS.put("seed", 1L);
    DEFAULTS.put("fp8-block", 128L);
    DEFAULTS.put("index-heads", 4L);
    DEFAULTS.put("index-head-dim", 16L);
    DEFAULTS.put("head-dim", 16L);
    DEFAULTS.put("o-lora-rank", 16L);
    DEFAULTS.put("o-groups", 2L);
    DEFAULTS.put("hc-mult", 2L);
    DEFAULTS.put("hash-layers", 1L);
  }

  private TinyModel() {}

  private static final Map<String, String> SIZE_HELP = Map.ofEntries(
      Map.entry("hidden-size", "hidden_size."), Map.entry("vocab-size", "vocab_size."),
      Map.entry("intermediate-size", "intermediate_size (dense layers)."),
      Map.entry("moe-intermediate-size", "moe_intermediate_size (each expert)."),
      Map.entry("experts", "n_routed_experts."), Map.entry("shared-experts", "n_shared_experts."),
      Map.entry("heads", "num_attention_heads."), Map.entry("q-lora-rank", "q_lora_rank."),
      Map.entry("kv-lora-rank", "kv_lora_rank."), Map.entry("qk-nope-head-dim", "qk_nope_head_dim."),
      Map.entry("qk-rope-head-dim", "qk_rope_head_dim."), Map.entry("v-head-dim", "v_head_dim."),
      Map.entry("layers", "num_hidden_layers."), Map.entry("first-k-dense", "first_k_dense_replace."),
      Map.entry("mtp-layers", "num_nextn_predict_layers."), Map.entry("shards", "Number of safetensors shards."),
      Map.entry("seed", "Seed of the values."), Map.entry("fp8-block", "FP8 scale block size (with --fp8)."),
      Map.entry("index-heads", "index_n_heads of the DSA indexer (with --v32)."),
      Map.entry("index-head-dim", "index_head_dim of the DSA indexer (with --v32)."),
      Map.entry("head-dim", "head_dim, the latent KV head (with --v4)."),
      Map.entry("o-lora-rank", "o_lora_rank (with --v4)."), Map.entry("o-groups", "o_groups (with --v4)."),
      Map.entry("hc-mult", "hc_mult, the mHC expansion (with --v4)."),
      Map.entry("hash-layers", "num_hash_layers (with --v4)."));

  static Args flags() {
    Args a = new Args().value("out").help("DIR", "The folder to write (must be empty). Required.")
        .flag("fp8").help("DeepSeek's FP8 release form: F8_E4M3 weights with float32 block scales (with --v4: "
            + "e8m0 block scales, and MXFP4 routed experts).")
        .flag("v32").help("DeepSeek-V3.2: model_type deepseek_v32, a DSA indexer in every layer; with --fp8, "
            + "scale_fmt ue8m0 (power-of-two block scales).")
        .flag("base").help("With --v4: a Base checkpoint, whose MTP layers have their own embedding and head "
            + "(copies of the main ones).")
        .flag("v4").help("DeepSeek-V4 (bf16): model_type deepseek_v4, native names, compressors and CSA indexers "
            + "(compress ratios 0, 0, then 4 and 8 alternating), hash-routed first layers, mHC; uses --head-dim, "
            + "--o-lora-rank, --o-groups, --hc-mult, --hash-layers, --index-heads, --index-head-dim.");
    DEFAULTS.forEach((k, v) -> a.value(k).help("N", SIZE_HELP.get(k)).defaultValue(v.toString()));
    return a;
  }

  public static void run(String[] argv, PrintStream log) throws IOException {
    Args a = flags().parse(argv);
    a.noBeamArgs("make-tiny-model");
    Map<String, Long> size = new LinkedHashMap<>();
    DEFAULTS.forEach((k, v) -> size.put(k, a.longValue(k, v)));
    size.put("fp8", a.has("fp8") ? 1L : 0L);
    size.put("v32", a.has("v32") ? 1L : 0L);
    size.put("v4", a.has("v4") ? 1L : 0L);
    size.put("base", a.has("base") ? 1L : 0L);
    if (a.has("base") && !a.has("v4")) {
      throw new IllegalArgumentException("--base goes with --v4");
    }
    if (a.has("v4") && a.has("v32")) {
      throw new IllegalArgumentException("--v4 cannot be combined with --v32");
    }
    Path out = Paths.get(a.require("out")).toAbsolutePath();
    long bytes = write(out, size);
    log.printf("wrote a synthetic DeepSeek-%s-architecture checkpoint of %,d bytes to %s%n",
        a.has("v4") ? "V4" : "V3", bytes, out);
  }

  /** Writes config, shards and index to {@code dir}; returns the bytes of tensor data written. */
  public static long write(Path dir, Map<String, Long> size) throws IOException {
    Files.createDirectories(dir);
    try (Stream<Path> s = Files.list(dir)) {
      if (s.findAny().isPresent()) {
        throw new IOException("--out " + dir + " is not empty");
      }
    }
    byte[] config = configJson(size);
    Files.write(dir.resolve("config.json"), config);
    ModelConfig cfg = ModelConfig.parse("config.json", config);
    long seed = size.get("seed");

    List<HfInventory.Entry> inventory = HfInventory.of(cfg, size.getOrDefault("base", 0L) == 1L);
    int units = 1 + cfg.hiddenLayers + cfg.nextnPredictLayers;
    int shards = (int) Math.max(1, Math.min(size.get("shards"), units));
    List<List<TensorSpec>> perShard = new ArrayList<>();
    for (int i = 0; i < shards; i++) {
      perShard.add(new ArrayList<>());
    }
    Map<String, String> weightMap = new LinkedHashMap<>();
    long total = 0;
    for (HfInventory.Entry e : inventory) {
      int shard = (int) ((long) (e.unit() + 1) * shards / units);
      if (cfg.isScaleName(e.name()) && e.unit() % 2 == 1) {
        shard = (shard + 1) % shards; // some scales sit in another shard than their weight, as in DeepSeek's release
      }
      String file = SafetensorsIndex.shardName(shard + 1, shards);
      perShard.get(shard).add(new TensorSpec(e.name(), e.dtype(), e.shape(),
          values(seed, valueName(cfg, e.name()), e.dtype(), e.shape().numel(), size.getOrDefault("v32", 0L) == 1L,
              cfg.routedExperts)));
      weightMap.put(e.name(), file);
      total += e.shape().byteSize(e.dtype());
    }
    for (int i = 0; i < shards; i++) {
      Path file = dir.resolve(SafetensorsIndex.shardName(i + 1, shards));
      try (FileChannel ch = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
        SafetensorsWriter.write(ch, perShard.get(i), SafetensorsWriter.PT_METADATA);
      }
    }
    Files.write(dir.resolve(SafetensorsIndex.FILE_NAME), new SafetensorsIndex(weightMap, total).toJson(2));
    return total;
  }

  static byte[] configJson(Map<String, Long> s) throws IOException {
    if (s.getOrDefault("v4", 0L) == 1L) {
      return v4ConfigJson(s);
    }
    ObjectNode c = JSON.createObjectNode();
    boolean v32 = s.getOrDefault("v32", 0L) == 1L;
    c.putArray("architectures").add(v32 ? "DeepseekV32ForCausalLM" : "DeepseekV3ForCausalLM");
    c.put("model_type", v32 ? "deepseek_v32" : "deepseek_v3");
    if (v32) {
      c.put("index_n_heads", s.get("index-heads"));
      c.put("index_head_dim", s.get("index-head-dim"));
      c.put("index_topk", 2048);
    }
    c.put("vocab_size", s.get("vocab-size"));
    c.put("hidden_size", s.get("hidden-size"));
    c.put("intermediate_size", s.get("intermediate-size"));
    c.put("moe_intermediate_size", s.get("moe-intermediate-size"));
    c.put("num_hidden_layers", s.get("layers"));
    c.put("first_k_dense_replace", s.get("first-k-dense"));
    c.put("moe_layer_freq", 1);
    c.put("n_routed_experts", s.get("experts"));
    c.put("n_shared_experts", s.get("shared-experts"));
    c.put("num_experts_per_tok", Math.min(2, s.get("experts")));
    c.put("n_group", 1);
    c.put("topk_group", 1);
    c.put("topk_method", "noaux_tc");
    c.put("scoring_func", "sigmoid");
    c.put("norm_topk_prob", true);
    c.put("routed_scaling_factor", 2.5);
    c.put("num_attention_heads", s.get("heads"));
    c.put("num_key_value_heads", s.get("heads"));
    c.put("q_lora_rank", s.get("q-lora-rank"));
    c.put("kv_lora_rank", s.get("kv-lora-rank"));
    c.put("qk_nope_head_dim", s.get("qk-nope-head-dim"));
    c.put("qk_rope_head_dim", s.get("qk-rope-head-dim"));
    c.put("v_head_dim", s.get("v-head-dim"));
    c.put("num_nextn_predict_layers", s.get("mtp-layers"));
    c.put("max_position_embeddings", 4096);
    c.put("rope_theta", 10000);
    c.put("rms_norm_eps", 1e-6);
    c.put("hidden_act", "silu");
    c.put("attention_bias", false);
    c.put("tie_word_embeddings", false);
    c.put("torch_dtype", "bfloat16");
    c.put("bos_token_id", 0);
    c.put("eos_token_id", 1);
    if (s.getOrDefault("fp8", 0L) == 1L) {
      fp8Config(c, s, v32);
    }
    return JSON.writeValueAsBytes(c);
  }

  /** DeepSeek's {@code quantization_config}; {@code ue8m0}: power-of-two scales (V3.1, V3.2, V4). */
  private static void fp8Config(ObjectNode c, Map<String, Long> s, boolean ue8m0) {
    ObjectNode q = c.putObject("quantization_config");
    q.put("activation_scheme", "dynamic");
    q.put("fmt", "e4m3");
    q.put("quant_method", "fp8");
    q.putArray("weight_block_size").add(s.get("fp8-block")).add(s.get("fp8-block"));
    if (ue8m0) {
      q.put("scale_fmt", "ue8m0");
    }
  }

  /** A DeepSeek-V4 config.json with Flash's fields at the given sizes (docs/mapping.md §11.1). */
  static byte[] v4ConfigJson(Map<String, Long> s) throws IOException {
    ObjectNode c = JSON.createObjectNode();
    c.putArray("architectures").add("DeepseekV4ForCausalLM");
    c.put("model_type", "deepseek_v4");
    c.put("vocab_size", s.get("vocab-size"));
    c.put("hidden_size", s.get("hidden-size"));
    c.put("moe_intermediate_size", s.get("moe-intermediate-size"));
    c.put("num_hidden_layers", s.get("layers"));
    c.put("num_nextn_predict_layers", s.get("mtp-layers"));
    c.put("n_routed_experts", s.get("experts"));
    c.put("n_shared_experts", s.get("shared-experts"));
    c.put("num_experts_per_tok", Math.min(2, s.get("experts")));
    c.put("num_attention_heads", s.get("heads"));
    c.put("head_dim", s.get("head-dim"));
    c.put("qk_rope_head_dim", s.get("qk-rope-head-dim"));
    c.put("q_lora_rank", s.get("q-lora-rank"));
    c.put("o_lora_rank", s.get("o-lora-rank"));
    c.put("o_groups", s.get("o-groups"));
    c.put("hc_mult", s.get("hc-mult"));
    c.put("index_n_heads", s.get("index-heads"));
    c.put("index_head_dim", s.get("index-head-dim"));
    c.put("index_topk", 512);
    c.put("num_hash_layers", s.get("hash-layers"));
    // Flash's pattern, with 8 for its 128 to keep the compressor windows tiny; MTP entries 0
    var ratios = c.putArray("compress_ratios");
    for (long i = 0; i < s.get("layers") + s.get("mtp-layers"); i++) {
      ratios.add(i < 2 || i >= s.get("layers") ? 0 : i % 2 == 0 ? 4 : 8);
    }
    c.put("sliding_window", 128);
    c.put("scoring_func", "sqrtsoftplus");
    c.put("routed_scaling_factor", 1.5);
    c.put("hc_eps", 1e-6);
    c.put("hc_sinkhorn_iters", 20);
    c.put("rms_norm_eps", 1e-6);
    c.put("tie_word_embeddings", false);
    c.put("torch_dtype", "bfloat16");
    if (s.getOrDefault("fp8", 0L) == 1L) {
      // the release form: FP8 projections with e8m0 block scales, MXFP4 routed experts
      fp8Config(c, s, true);
      c.put("expert_dtype", "fp4");
    }
    return JSON.writeValueAsBytes(c);
  }

  /**
   * Whose values a tensor gets: as in DeepSeek's release, an MTP layer's {@code embed_tokens} and
   * {@code shared_head.head} are copies of the main embedding and lm_head.
   */
  static String valueName(ModelConfig cfg, String name) {
    if (cfg.v4() && HfNames.layerOf(cfg, name) >= cfg.hiddenLayers) {
      // a Base checkpoint's MTP embedding and head are copies of the main ones
      if (name.endsWith(".emb.tok_emb.weight")) {
        return HfNames.V4_EMBED;
      }
      if (name.endsWith(".head.weight")) {
        return "head.weight";
      }
      return name;
    }
    int layer = HfNames.layerOf(name);
    if (!cfg.v4() && layer >= cfg.hiddenLayers) {
      if (name.endsWith(".embed_tokens.weight")) {
        return HfNames.EMBED;
      }
      if (name.endsWith(".shared_head.head.weight")) {
        return HfNames.LM_HEAD;
      }
    }
    return name;
  }

  /**
   * Seeded values of one tensor: uniform in [-1, 1), seeded by the model seed and the tensor name, so that every
   * tensor differs and any run with the same seed writes the same bytes.
   */
  static TensorBytes values(long seed, String name, DType dtype, long numel, boolean powerOfTwoScales,
      long experts) {
    return sink -> {
      SplittableRandom r = new SplittableRandom(seed * 0x9E3779B97F4A7C15L ^ name.hashCode());
      ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
      boolean scale = name.endsWith("_scale_inv") || name.endsWith(".scale");
      boolean pow2 = scale && powerOfTwoScales;
      for (long i = 0; i < numel; i++) {
        float v = (float) (r.nextDouble() * 2 - 1);
        if (dtype == DType.BF16) {
          buf.putShort(BFloat16.fromFloat(v));
        } else if (dtype == DType.F32) {
          // FP8 block scales are small and positive; ue8m0 ones (V3.2) are powers of two
          buf.putFloat(!scale ? v : pow2 ? (float) Math.scalb(1.0, -7 - r.nextInt(7))
              : (float) (1e-4 + r.nextDouble() * 1e-2));
        } else if (dtype == DType.F8_E8M0) {
          buf.put((byte) (120 + r.nextInt(8))); // V4's block scales: 2^-7 … 1
        } else if (dtype == DType.I8) {
          buf.put((byte) r.nextInt(256)); // V4's MXFP4: two e2m1 codes, every one finite
        } else if (dtype == DType.I32) {
          buf.putInt(r.nextInt((int) experts)); // V4's tid2eid: expert ids
        } else if (dtype == DType.F8_E4M3) {
          int code = r.nextInt(256);
          buf.put((byte) ((code & 0x7F) == 0x7F ? code - 1 : code)); // every finite e4m3fn code, no NaN
        } else {
          throw new IllegalArgumentException("no generator for " + dtype);
        }
        if (!buf.hasRemaining()) {
          buf.flip();
          while (buf.hasRemaining()) {
            sink.write(buf);
          }
          buf.clear();
        }
      }
      buf.flip();
      while (buf.hasRemaining()) {
        sink.write(buf);
      }
    };
  }
}
