package ckptbeam.pipelines;

import ckptbeam.transforms.LayoutException;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreKeyNames;
import java.util.List;
import java.util.Locale;
import java.util.TreeSet;

/**
 * The layout flags, named as in MindSpeed-LLM: {@code --target-…-parallel-size} for hf2mcore,
 * {@code --source-…-parallel-size} for mcore2hf, the other layout flags unprefixed. mcore2mcore has both sides:
 * the parallel sizes keep their names and every other layout flag X is {@code --source-X} / {@code --target-X},
 * except {@code --mtp-num-layers} and {@code --first-k-dense-replace}, which both sides share.
 */
final class LayoutFlags {
  /** The layout flags given per side in mcore2mcore. */
  static final List<String> PER_SIDE = List.of("num-layers-per-virtual-pipeline-stage", "num-layer-list",
      "noop-layers", "num-layers", "schedules-method", "mcore-key-names", "moe-grouped-gemm", "moe-tp-extend-ep",
      "mla-mm-split");

  private LayoutFlags() {}

  /** The flags of one side: {@code side}'s parallel sizes, the others unprefixed. */
  static Args define(Args a, String side) {
    return shared(perSide(sizes(a, side), "", side));
  }

  /** Both sides (mcore2mcore). */
  static Args defineBoth(Args a) {
    return shared(perSide(perSide(sizes(sizes(a, "source"), "target"), "source-", "source"), "target-", "target"));
  }

  private static String whose(String side) {
    return side.equals("target") ? "of the output" : "the checkpoint was written with";
  }

  private static Args sizes(Args a, String side) {
    return a.value(side + "-tensor-parallel-size").help("N", "Tensor-parallel size " + whose(side)
            + ": splits, replication and the gate/up interleave.").defaultValue("1")
        .value(side + "-pipeline-parallel-size").help("N", "Pipeline stages " + whose(side)
            + ": an even split of --num-layers over the stages.").defaultValue("1")
        .value(side + "-expert-parallel-size").help("N", "Expert-parallel size " + whose(side)
            + ": routed experts spread over the EP ranks, everything else replicated.").defaultValue("1");
  }

  private static Args perSide(Args a, String prefix, String side) {
    String of = prefix.isEmpty() ? "" : " (layout " + whose(side) + ")";
    return a.value(prefix + "num-layers-per-virtual-pipeline-stage").help("N", "Virtual pipeline: layers per chunk; "
            + "rank files hold model0 ... modelN" + of + ".")
        .value(prefix + "num-layer-list").help("a,b,...", "Uneven stages: the layers of each pipeline stage (not with "
            + "VPP or noop layers)" + of + ".")
        .value(prefix + "noop-layers").help("i,j,...", "Global layer slots left empty" + of + ".")
        .value(prefix + "num-layers").help("N", "mcore layer slots including noop slots, excluding MTP" + of + ".")
        .defaultValue("num_hidden_layers + noop layers")
        .value(prefix + "schedules-method").help("dualpipev", "DualPipeV layout: two chunks per stage" + of + ".")
        .value(prefix + "mcore-key-names").help("current|2025.03", "Key names of current MindSpeed, or of its "
            + "releases before the April/July 2025 renames" + of + ".").defaultValue("current")
        .flag(prefix + "moe-grouped-gemm").help("Experts as weight1/weight2 instead of local_experts.{l}" + of + ".")
        .flag(prefix + "moe-tp-extend-ep").help("Whole experts per TP rank (needs --" + prefix + "moe-grouped-gemm)"
            + of + ".")
        .flag(prefix + "mla-mm-split").help("Four per-head up-projection matrices instead of two" + of + ".");
  }

  private static Args shared(Args a) {
    return ModelTypeFlags.define(a).value("first-k-dense-replace").help("K", "Take only the first K dense layers, then the MoE layers.")
        .defaultValue("config.json")
        .value("mtp-num-layers", "num-nextn-predict-layers").help("M", "MTP layers, on the last stage.")
        .defaultValue("0, as MindSpeed");
  }

  static LayoutOptions parse(Args a, String side) {
    return parse(a, side, "");
  }

  /**
   * The layout of {@code side}: its parallel sizes, the per-side flags with {@code prefix} ("" or "source-",
   * "target-"), the shared ones.
   */
  static LayoutOptions parse(Args a, String side, String prefix) {
    LayoutOptions.Builder o = LayoutOptions.builder()
        .tp(a.intValue(side + "-tensor-parallel-size", 1))
        .pp(a.intValue(side + "-pipeline-parallel-size", 1))
        .ep(a.intValue(side + "-expert-parallel-size", 1))
        .layersPerVirtualStage(a.intValue(prefix + "num-layers-per-virtual-pipeline-stage", 0))
        .numLayerList(a.intList(prefix + "num-layer-list"))
        .numLayers(a.intValue(prefix + "num-layers", -1))
        .firstKDense(a.intValue("first-k-dense-replace", -1))
        .mtpLayers(a.intValue("mtp-num-layers", 0))
        .groupedGemm(a.has(prefix + "moe-grouped-gemm"))
        .tpExtendEp(a.has(prefix + "moe-tp-extend-ep"))
        .mlaMmSplit(a.has(prefix + "mla-mm-split"))
        .v4Base("deepseek4_base".equals(a.get(ModelTypeFlags.MODEL_TYPE)))
        .expertTensorParallel(a.intValue(ModelTypeFlags.EXPERT_TP, 0));
    int[] noop = a.intList(prefix + "noop-layers");
    if (noop != null) {
      TreeSet<Integer> slots = new TreeSet<>();
      for (int n : noop) {
        if (!slots.add(n)) {
          throw new IllegalArgumentException("--" + prefix + "noop-layers lists layer " + n + " twice");
        }
      }
      o.noopLayers(slots);
    }
    if (a.has(prefix + "schedules-method")) {
      if (!a.get(prefix + "schedules-method").equals("dualpipev")) {
        throw new IllegalArgumentException("--" + prefix + "schedules-method supports only \"dualpipev\", got \""
            + a.get(prefix + "schedules-method") + "\"");
      }
      o.dualpipe(true);
    }
    if (a.has(prefix + "mcore-key-names")) {
      o.keyNames(McoreKeyNames.Scheme.fromFlag(a.get(prefix + "mcore-key-names")));
    }
    return o.build();
  }

  /**
   * How this command line names a layout setting in a message: the flag its user typed. {@code sided}: mcore2mcore,
   * where every per-side flag carries its side; otherwise only the parallel sizes do, and {@code side} null means
   * the command's one layout ({@code defaultSide}).
   */
  static String flag(LayoutException.Setting s, LayoutException.Side side, LayoutException.Side defaultSide,
      boolean sided) {
    String which = (side != null ? side : defaultSide).name().toLowerCase(Locale.ROOT);
    String prefix = sided ? which + "-" : "";
    switch (s) {
      case TP:
        return "--" + which + "-tensor-parallel-size";
      case PP:
        return "--" + which + "-pipeline-parallel-size";
      case EP:
        return "--" + which + "-expert-parallel-size";
      case FIRST_K_DENSE:
        return "--first-k-dense-replace";
      case MTP_LAYERS:
        return "--mtp-num-layers";
      case LAYERS_PER_VIRTUAL_STAGE:
        return "--" + prefix + "num-layers-per-virtual-pipeline-stage";
      case NUM_LAYER_LIST:
        return "--" + prefix + "num-layer-list";
      case NOOP_LAYERS:
        return "--" + prefix + "noop-layers";
      case NUM_LAYERS:
        return "--" + prefix + "num-layers";
      case GROUPED_GEMM:
        return "--" + prefix + "moe-grouped-gemm";
      case TP_EXTEND_EP:
        return "--" + prefix + "moe-tp-extend-ep";
      case MLA_MM_SPLIT:
        return "--" + prefix + "mla-mm-split";
      case DUALPIPE:
        return "--" + prefix + "schedules-method dualpipev";
      case KEY_NAMES:
        return "--" + prefix + "mcore-key-names";
      case NF4:
        return "--qlora-nf4";
      case EXPERT_TP:
        return "--" + ModelTypeFlags.EXPERT_TP;
      default:
        throw new IllegalStateException(s.toString());
    }
  }

  /**
   * A layout error as the user of {@code command} reads it: each setting named by the flag that sets it. hf2mcore
   * (also watch with {@code --direction hf2mcore}) has the target's layout; the others read rank files and have
   * the source's; mcore2mcore has both.
   */
  static String message(LayoutException e, String command, List<String> args) {
    int direction = args.indexOf("--direction");
    boolean hf2mcore = command.equals("hf2mcore") || args.contains("--direction=hf2mcore")
        || direction >= 0 && direction + 1 < args.size() && args.get(direction + 1).equals("hf2mcore");
    LayoutException.Side defaultSide = hf2mcore ? LayoutException.Side.TARGET : LayoutException.Side.SOURCE;
    boolean sided = command.equals("mcore2mcore");
    return e.message((setting, side) -> flag(setting, side, defaultSide, sided));
  }

  /** mcore2mcore: a per-side layout flag given without its side is an error that names both sides. */
  static void refuseUnsided(Args a) {
    for (String s : a.beamArgs()) {
      String name = s.replaceFirst("^--", "").replaceFirst("=.*$", "");
      if (PER_SIDE.contains(name)) {
        throw new IllegalArgumentException("--" + name + " is given per side in mcore2mcore: --source-" + name
            + " (the layout of --load-dir) or --target-" + name + " (the layout to write)");
      }
    }
  }
}
