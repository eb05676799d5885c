package ckptbeam.transforms;

/** HuggingFace DeepSeek-V3 tensor names (docs/mapping.md §2.1). */
public final class HfNames {
  public static final String EMBED = "model.embed_tokens.weight";
  public static final String NORM = "model.norm.weight";
  public static final String LM_HEAD = "lm_head.weight";

  private HfNames() {}

  /** {@code model.layers.{L}.} + suffix. */
  public static String layer(int index, String suffix) {
    return "model.layers." + index + "." + suffix;
  }

  /** {@code model.layers.{L}.mlp.experts.{e}.} + suffix. */
  public static String expert(int layer, long expert, String suffix) {
    return layer(layer, "mlp.experts." + expert + "." + suffix);
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
