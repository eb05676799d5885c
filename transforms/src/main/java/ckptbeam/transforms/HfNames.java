package ckptbeam.transforms;

import java.util.regex.Pattern;

/**
 * HuggingFace DeepSeek tensor names (docs/mapping.md §2.1): V3's {@code model.layers.N.…} with MTP layers numbered
 * after the decoder layers, V4's native {@code layers.N.…} with MTP layers in {@code mtp.M.…} (§11.2).
 */
public final class HfNames {
  public static final String EMBED = "model.embed_tokens.weight";
  public static final String NORM = "model.norm.weight";
  public static final String LM_HEAD = "lm_head.weight";
  /** V4's embedding: the one global tensor that goes with HF layer 0 rather than the last. */
  public static final String V4_EMBED = "embed.weight";

  private HfNames() {}

  /** {@code model.layers.{L}.} + suffix. */
  public static String layer(int index, String suffix) {
    return "model.layers." + index + "." + suffix;
  }

  /** {@code model.layers.{L}.mlp.experts.{e}.} + suffix. */
  public static String expert(int layer, long expert, String suffix) {
    return layer(layer, "mlp.experts." + expert + "." + suffix);
  }

  /**
   * The full name of a layer tensor: V3 {@code model.layers.{L}.suffix}; V4 {@code layers.{L}.suffix}, or for an MTP
   * layer (L at or past {@code num_hidden_layers}) {@code mtp.{L - R}.suffix}.
   */
  public static String layer(ModelConfig c, int index, String suffix) {
    if (!c.v4()) {
      return layer(index, suffix);
    }
    return index < c.hiddenLayers ? "layers." + index + "." + suffix
        : "mtp." + (index - c.hiddenLayers) + "." + suffix;
  }

  /** The HF layer index of a name in this config's naming (MTP layers after the decoder layers), or -1 for a global. */
  public static int layerOf(ModelConfig c, String name) {
    if (!c.v4()) {
      return layerOf(name);
    }
    if (name.startsWith("layers.")) {
      return number(name, 7);
    }
    if (name.startsWith("mtp.")) {
      int m = number(name, 4);
      return m < 0 ? -1 : c.hiddenLayers + m;
    }
    return -1;
  }

  /**
   * V4: the spelling without {@code .weight} that MindSpeed's hf2mcore also accepts for a few weights ({@code attn.wo_a},
   * {@code ffn.experts.j.w1..3}, {@code ffn.shared_experts.w1..3}; V4 spec §8 #27), or null for any other name.
   */
  public static String v4Alias(String name) {
    return V4_ALIASED.matcher(name).matches() ? name.substring(0, name.length() - ".weight".length()) : null;
  }

  /** Asked of every tensor name while planning a V4 conversion: compiled once. */
  private static final Pattern V4_ALIASED = Pattern.compile(
      "(layers|mtp)\\.\\d+\\.(attn\\.wo_a|ffn\\.experts\\.\\d+\\.w[123]|ffn\\.shared_experts\\.w[123])\\.weight");

  /** The global tensor that goes into the file of HF layer 0 (the embedding); the others go with the last layer. */
  public static String embedding(ModelConfig c) {
    return c.v4() ? V4_EMBED : EMBED;
  }

  private static int number(String name, int from) {
    int end = name.indexOf('.', from);
    try {
      return Integer.parseInt(name.substring(from, end < 0 ? name.length() : end));
    } catch (NumberFormatException e) {
      return -1;
    }
  }

  /** The HF layer index of a {@code model.layers.N.…} name, or -1. */
  public static int layerOf(String name) {
    if (!name.startsWith("model.layers.")) {
      return -1;
    }
    int end = name.indexOf('.', 13);
    try {
      return Integer.parseInt(name.substring(13, end < 0 ? name.length() : end));
    } catch (NumberFormatException e) {
      return -1;
    }
  }
}
