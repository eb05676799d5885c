package ckptbeam.transforms;

import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * mcore state-dict key names per naming scheme of the training code (docs/mapping.md §3.10): the current names are
 * {@link TensorMapping}'s keys plus the layer prefixes; the 2025.03 names are a diff of them. Templates use
 * {@code {i}} for a stage-local layer index, {@code {m}} for an MTP index and {@code {l}} for a local expert.
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
    CURRENT.putAll(TensorMapping.currentKeys());
    CURRENT.put("layer", "decoder.layers.{i}.");
    CURRENT.put("mtp_layer", "mtp.layers.{m}.transformer_layer.");

    // MindSpeed-LLM before the April and July 2025 renames: the same table with these keys changed
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

  /**
   * The fixed ending of each row's key in every scheme: the template after its last index ({@code {m}}, {@code {l}}),
   * e.g. {@code eh_proj.weight}, or the whole template when it has none.
   */
  static List<String> keyEndings(List<String> logicals) {
    Set<String> out = new LinkedHashSet<>();
    for (String logical : logicals) {
      for (Map<String, String> table : List.of(CURRENT, V2025_03)) {
        String t = table.get(logical);
        out.add(t.substring(t.lastIndexOf('}') + 1).replaceFirst("^\\.", ""));
      }
    }
    return List.copyOf(out);
  }
}
