package ckptbeam.transforms;

import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.transforms.TensorMapping.Part;
import ckptbeam.transforms.TensorMapping.Row;
import ckptbeam.transforms.TensorMapping.Source;
import java.util.ArrayList;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;
import java.util.regex.Pattern;

/**
 * Every tensor a bf16 HF DeepSeek checkpoint (V3 architecture or V4) holds for a given config (docs/formats.md §4.2):
 * names, shapes and dtypes, grouped by the layer they belong to.
 */
public final class HfInventory {
  /**
   * One tensor of the inventory; {@code unit} is -1 for the embedding, {@code num_hidden_layers - 1} for norm and
   * lm_head, else the HF layer index.
   */
  public record Entry(String name, Shape shape, DType dtype, int unit) {}

  private HfInventory() {}

  /**
   * The tensors in a natural order: embedding, layers 0.. (the MTP layers last), final norm and lm_head. For an FP8 config
   * (quantization_config), every 2-D projection of attention, dense MLP and experts is F8_E4M3 with a float32
   * {@code <name>_scale_inv} of {@code [ceil(out/B), ceil(in/B)]} right after it (docs/formats.md §3.2).
   */
  public static List<Entry> of(ModelConfig c) {
    return of(c, false);
  }

  /** As {@link #of(ModelConfig)}; {@code v4Base}: a DeepSeek-V4 Base checkpoint, whose MTP layers have their own
   * embedding and head. */
  public static List<Entry> of(ModelConfig c, boolean v4Base) {
    c = c.withOwnMtpEmbedding(v4Base);
    List<Entry> plain = plain(c, v4Base);
    if (!c.fp8) {
      return plain;
    }
    List<Entry> out = new ArrayList<>();
    for (Entry e : plain) {
      if (c.v4() && isMxfp4V4(e.name)) {
        // two e2m1 values per byte, one e8m0 scale per 32 inputs of a row (docs/mapping.md §11.6)
        out.add(new Entry(e.name, Shape.of(e.shape.dim(0), e.shape.dim(1) / 2), DType.I8, e.unit));
        out.add(new Entry(c.scaleName(e.name), Shape.of(e.shape.dim(0), e.shape.dim(1) / 32), DType.F8_E8M0,
            e.unit));
        continue;
      }
      if (!(c.v4() ? isFp8V4(e.name) : isFp8(e.name))) {
        out.add(e);
        continue;
      }
      out.add(new Entry(e.name, e.shape, DType.F8_E4M3, e.unit));
      long rows = (e.shape.dim(0) + c.fp8BlockRows - 1) / c.fp8BlockRows;
      long cols = (e.shape.dim(1) + c.fp8BlockCols - 1) / c.fp8BlockCols;
      out.add(new Entry(c.scaleName(e.name), Shape.of(rows, cols), c.v4() ? DType.F8_E8M0 : DType.F32, e.unit));
    }
    return out;
  }

  /** V4's FP8 weights: the attention projections, the indexer's wq_b, the shared experts, MTP's e/h projections. */
  static boolean isFp8V4(String name) {
    return V4_FP8.matcher(name).matches();
  }

  /** V4's MXFP4 weights: the routed experts. */
  static boolean isMxfp4V4(String name) {
    return V4_MXFP4.matcher(name).matches();
  }

  private static final Pattern V4_FP8 = Pattern.compile(".*\\.(attn\\.(wq_a|wq_b|wkv|wo_a|wo_b|indexer\\.wq_b)"
      + "|ffn\\.shared_experts\\.w[123]|e_proj|h_proj)\\.weight");
  private static final Pattern V4_MXFP4 = Pattern.compile(".*\\.ffn\\.experts\\.\\d+\\.w[123]\\.weight");

  /**
   * Which weights DeepSeek's release stores in FP8: the projections (and V3.2's indexer wq_b and wk), not eh_proj,
   * the indexer's weights_proj, router, embeddings, heads, norms.
   */
  public static boolean isFp8(String name) {
    return name.startsWith("model.layers.") && (name.endsWith("_proj.weight") && !name.endsWith("eh_proj.weight")
        && !name.endsWith("indexer.weights_proj.weight") || name.endsWith("indexer.wq_b.weight")
        || name.endsWith("indexer.wk.weight"));
  }

  private static List<Entry> plain(ModelConfig c, boolean v4Base) {
    List<Entry> out = new ArrayList<>();
    Set<String> seen = new LinkedHashSet<>();
    global(out, seen, c, Part.EMBEDDING, -1);
    for (int l = 0; l < c.hiddenLayers + c.nextnPredictLayers; l++) {
      layer(out, seen, c, l, v4Base);
    }
    global(out, seen, c, Part.FINAL, c.hiddenLayers - 1);
    return out;
  }

  /** The tensors of a global part (embedding; final norm and lm_head), counted with {@code unit}. */
  private static void global(List<Entry> out, Set<String> seen, ModelConfig c, Part part, int unit) {
    for (Row row : TensorMapping.ROWS) {
      if (row.part() == part && row.family() == c.family) {
        row.sources().forEach(s -> add(out, seen, c, s.name(), s, unit, -1));
      }
    }
  }

  /** A layer's tensors: every HF tensor the mapping's rows read for a layer of its kind, each once. */
  private static void layer(List<Entry> out, Set<String> seen, ModelConfig c, int l, boolean v4Base) {
    List<Part> parts = new ArrayList<>();
    if (l >= c.hiddenLayers) {
      parts.addAll(List.of(Part.MTP_EMBEDDING, Part.MTP_INPUT, Part.MTP_OUTPUT));
    }
    parts.add(Part.ATTENTION);
    parts.addAll(l < c.firstKDenseReplace ? List.of(Part.DENSE_MLP) : List.of(Part.MOE, Part.EXPERT));
    for (Part part : parts) {
      for (Row row : TensorMapping.ROWS) {
        if (row.part() != part || row.family() != c.family || !row.when().holdsForConfig(c)
            || !row.when().holdsForLayer(c, l)) {
          continue;
        }
        for (Source s : row.sources()) {
          long experts = part == Part.EXPERT ? c.routedExperts : 1;
          for (long e = 0; e < experts; e++) {
            add(out, seen, c, s.hfName(c, l, part == Part.EXPERT ? e : -1), s, l, l);
          }
        }
      }
      if (part == Part.MTP_OUTPUT && !c.v4()) {
        TensorMapping.MTP_UNCONVERTED.forEach(s -> add(out, seen, c, s.hfName(c, l, -1), s, l, l));
      }
      if (part == Part.MTP_OUTPUT && c.v4() && v4Base) {
        Source head = new Source(TensorMapping.V4_BASE_MTP_HEAD, TensorMapping.VOCAB, TensorMapping.H,
            ckptbeam.io.tensor.DType.BF16);
        add(out, seen, c, head.hfName(c, l, -1), head, l, l);
      }
    }
  }

  /** One tensor, once (a source several rows read, like q_b_proj, is listed at its first). */
  private static void add(List<Entry> out, Set<String> seen, ModelConfig c, String name, Source s, int unit,
      int layer) {
    if (seen.add(name)) {
      out.add(new Entry(name, Shape.of(s.shape(c, layer)), s.dtype(), unit));
    }
  }
}
