package ckptbeam.transforms;

import java.util.HashMap;
import java.util.Map;

/**
 * mcore state-dict key names, kept as data: one table per naming scheme of the training code (docs/mapping.md §3, §3.10).
 * Templates use {@code {i}} for a stage-local layer index and {@code {m}} for an MTP index.
 */
public final class McoreKeyNames {
  /** A naming scheme, by the MindSpeed-LLM release it matches. */
  public enum Scheme {
    /** Names after the April and July 2025 renames (the current converter). */
    CURRENT("current"),
    /** Names before them: {@code mtp_layers.{m}.…}, {@code linear_qb}, {@code linear_kvb}, {@code k_layernorm}. */
    V2025_03("2025.03");

    public final String flag;

    Scheme(String flag) {
      this.flag = flag;
    }

    public static Scheme fromFlag(String value) {
      for (Scheme s : values()) {
        if (s.flag.equals(value)) {
          return s;
        }
      }
      throw new IllegalArgumentException("--mcore-key-names must be \"current\" or \"2025.03\", got \"" + value + "\"");
    }
  }

  private static final Map<String, String> CURRENT = new HashMap<>();
  private static final Map<String, String> V2025_03;

  static {
    CURRENT.put("embedding", "embedding.word_embeddings.weight");
    CURRENT.put("final_norm", "decoder.final_layernorm.weight");
    CURRENT.put("final_norm_with_mtp", "final_layernorm.weight");
    CURRENT.put("output", "output_layer.weight");
    CURRENT.put("layer", "decoder.layers.{i}.");
    CURRENT.put("mtp_layer", "mtp.layers.{m}.transformer_layer.");
    CURRENT.put("mtp_enorm", "mtp.layers.{m}.enorm.weight");
    CURRENT.put("mtp_hnorm", "mtp.layers.{m}.hnorm.weight");
    CURRENT.put("mtp_eh_proj", "mtp.layers.{m}.eh_proj.weight");
    CURRENT.put("mtp_embedding", "embedding.word_embeddings.weight");
    CURRENT.put("mtp_final_norm", "mtp.final_layernorms.{m}.weight");
    CURRENT.put("input_norm", "input_layernorm.weight");
    CURRENT.put("pre_mlp_norm", "pre_mlp_layernorm.weight");
    CURRENT.put("qkv", "self_attention.linear_qkv.weight");
    CURRENT.put("proj", "self_attention.linear_proj.weight");
    CURRENT.put("q_norm", "self_attention.q_layernorm.weight");
    CURRENT.put("kv_norm", "self_attention.kv_layernorm.weight");
    CURRENT.put("q_up", "self_attention.linear_q_up_proj.weight");
    CURRENT.put("kv_up", "self_attention.linear_kv_up_proj.weight");
    CURRENT.put("qk_nope", "self_attention.linear_qk_nope.weight");
    CURRENT.put("qk_rope", "self_attention.linear_qk_rope.weight");
    CURRENT.put("kv_nope", "self_attention.linear_kv_nope.weight");
    CURRENT.put("v", "self_attention.linear_v.weight");
    CURRENT.put("fc1", "mlp.linear_fc1.weight");
    CURRENT.put("fc2", "mlp.linear_fc2.weight");
    CURRENT.put("router", "mlp.router.weight");
    CURRENT.put("router_bias", "mlp.router.expert_bias");
    CURRENT.put("shared_fc1", "mlp.shared_experts.linear_fc1.weight");
    CURRENT.put("shared_fc2", "mlp.shared_experts.linear_fc2.weight");
    CURRENT.put("weight1", "mlp.experts.weight1");
    CURRENT.put("weight2", "mlp.experts.weight2");
    CURRENT.put("expert_fc1", "mlp.experts.local_experts.{l}.linear_fc1.weight");
    CURRENT.put("expert_fc2", "mlp.experts.local_experts.{l}.linear_fc2.weight");
    // DeepSeek-V3.2's DSA indexer, copied whole into every rank of the layer's stage
    CURRENT.put("indexer_wq_b", "self_attention.dsa_indexer.wq_b.weight");
    CURRENT.put("indexer_wk", "self_attention.dsa_indexer.wk.weight");
    CURRENT.put("indexer_k_norm", "self_attention.dsa_indexer.k_norm.weight");
    CURRENT.put("indexer_k_norm_bias", "self_attention.dsa_indexer.k_norm.bias");
    CURRENT.put("indexer_weights_proj", "self_attention.dsa_indexer.weights_proj.weight");

    V2025_03 = new HashMap<>(CURRENT);
    V2025_03.put("mtp_layer", "mtp_layers.{m}.transformer_layer.");
    V2025_03.put("mtp_enorm", "mtp_layers.{m}.enorm.weight");
    V2025_03.put("mtp_hnorm", "mtp_layers.{m}.hnorm.weight");
    V2025_03.put("mtp_eh_proj", "mtp_layers.{m}.eh_proj.weight");
    V2025_03.put("mtp_embedding", "mtp_layers.{m}.embedding.word_embeddings.weight");
    V2025_03.put("mtp_final_norm", "mtp_layers.{m}.final_layernorm.weight");
    V2025_03.put("kv_norm", "self_attention.k_layernorm.weight");
    V2025_03.put("q_up", "self_attention.linear_qb.weight");
    V2025_03.put("kv_up", "self_attention.linear_kvb.weight");
  }

  private final Map<String, String> table;

  public McoreKeyNames(Scheme scheme) {
    this.table = scheme == Scheme.CURRENT ? CURRENT : V2025_03;
  }

  /** The template of a logical name, unfilled. */
  public String template(String logical) {
    String t = table.get(logical);
    if (t == null) {
      throw new IllegalArgumentException("no mcore key for " + logical);
    }
    return t;
  }

  /** A key with no index ({@code embedding}, {@code output}, a per-layer suffix). */
  public String key(String logical) {
    return template(logical);
  }

  /** {@code decoder.layers.{i}.} for a stage-local index. */
  public String layerPrefix(int local) {
    return template("layer").replace("{i}", Integer.toString(local));
  }

  /** An MTP key with its index filled in. */
  public String mtp(String logical, int m) {
    return template(logical).replace("{m}", Integer.toString(m));
  }

  /** A per-expert suffix with the local expert index filled in. */
  public String expert(String logical, int local) {
    return template(logical).replace("{l}", Integer.toString(local));
  }
}
