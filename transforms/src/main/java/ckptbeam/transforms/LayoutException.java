package ckptbeam.transforms;

import java.util.List;
import java.util.Locale;
import java.util.function.BiFunction;

/**
 * A layout that does not fit the rules or the model. The message names settings ({@link Setting}), not command-line
 * flags: {@link #getMessage()} uses the builder's names ({@code tp}, {@code numLayerList}); a command line renders
 * the same message with the flags its user typed ({@link #message(BiFunction)}).
 */
public final class LayoutException extends IllegalArgumentException {
  private static final long serialVersionUID = 1L;

  /** A layout setting, named as {@link LayoutOptions.Builder} names it. */
  public enum Setting {
    TP("tp"), PP("pp"), EP("ep"), LAYERS_PER_VIRTUAL_STAGE("layersPerVirtualStage"), NUM_LAYER_LIST("numLayerList"),
    NOOP_LAYERS("noopLayers"), NUM_LAYERS("numLayers"), FIRST_K_DENSE("firstKDense"), MTP_LAYERS("mtpLayers"),
    GROUPED_GEMM("groupedGemm"), TP_EXTEND_EP("tpExtendEp"), MLA_MM_SPLIT("mlaMmSplit"), DUALPIPE("dualpipe"),
    KEY_NAMES("keyNames"), NF4("nf4"), EXPERT_TP("expertTensorParallel");

    /** The builder method that sets it. */
    public final String label;

    Setting(String label) {
      this.label = label;
    }
  }

  /** Which layout of a request: the one the input was written with, or the one the output gets. */
  public enum Side {
    SOURCE, TARGET
  }

  /** Text and settings, in order. */
  private final List<Object> parts;
  /** The layout the message is about, or null when not known. */
  private final Side side;

  LayoutException(List<Object> parts) {
    this(parts, null);
  }

  private LayoutException(List<Object> parts, Side side) {
    super(render(parts, side, (s, d) -> d == null ? s.label : d.name().toLowerCase(Locale.ROOT) + " " + s.label));
    this.parts = List.copyOf(parts);
    this.side = side;
  }

  /** The same error, about the {@code side} layout of a request. */
  public LayoutException on(Side which) {
    LayoutException e = new LayoutException(parts, which);
    e.setStackTrace(getStackTrace());
    return e;
  }

  /** The layout the message is about, or null when not known. */
  public Side side() {
    return side;
  }

  /** The message with each setting named by {@code naming} (setting, side → name; side may be null). */
  public String message(BiFunction<Setting, Side, String> naming) {
    return render(parts, side, naming);
  }

  private static String render(List<Object> parts, Side side, BiFunction<Setting, Side, String> naming) {
    StringBuilder b = new StringBuilder();
    for (Object p : parts) {
      b.append(p instanceof Setting s ? naming.apply(s, side) : p);
    }
    return b.toString();
  }
}
