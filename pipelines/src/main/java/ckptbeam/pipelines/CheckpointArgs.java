package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreInputConfig;
import ckptbeam.transforms.ModelConfig;
import java.io.IOException;
import java.util.Map;
import java.util.TreeSet;

/**
 * A DeepSeek-V4 checkpoint's layout from its rank files' {@code args} (docs/mapping.md §11.7), as MindSpeed's V4
 * mcore → HF takes it: every layout flag the user did not give is read from there, and every flag given must agree
 * with it. The args are read from the first rank file by name ({@code mp_rank_00…}), not an arbitrary one.
 */
final class CheckpointArgs {
  private CheckpointArgs() {}

  /**
   * An mcore2hf request (from the flags {@code a}) whose input layout is completed from its checkpoint's args: a
   * DeepSeek-V4 checkpoint says its layout there, and the flags given must agree with it.
   */
  static ConversionRequest complete(Args a, ConversionRequest r) throws IOException {
    return complete(a, r, McoreInputConfig.firstRankFile(r.loadDir()));
  }

  /** As {@link #complete(Args, ConversionRequest)}, from the args of rank file {@code first} (a watch checked it). */
  static ConversionRequest complete(Args a, ConversionRequest r, String first) throws IOException {
    LayoutOptions layout = fill(a, r.layout(), r.loadDir(), McoreInputConfig.of(r), "source", "", first);
    return layout.equals(r.layout()) ? r : r.withLayout(layout);
  }

  /**
   * {@code o} (parsed from the flags of {@code side} with per-side {@code prefix}) completed from the args of the
   * checkpoint in {@code loadDir}, whose model is described by {@code configPath}; unchanged when the checkpoint is
   * not V4 or has no args.
   */
  static LayoutOptions fill(Args a, LayoutOptions o, String loadDir, McoreInputConfig config, String side,
      String prefix) throws IOException {
    return fill(a, o, loadDir, config, side, prefix, null);
  }

  /** As above, reading the args of rank file {@code first} (relative to {@code loadDir}; null: the first by name). */
  private static LayoutOptions fill(Args a, LayoutOptions o, String loadDir, McoreInputConfig config, String side,
      String prefix, String first) throws IOException {
    ModelConfig cfg = config.parse();
    String configPath = config.source;
    if (!cfg.v4()) {
      return o;
    }
    if (first == null) {
      first = McoreInputConfig.firstRankFile(loadDir);
    }
    Map<String, Object> args = first == null ? null : McoreInputConfig.args(loadDir, first);
    if (args == null) {
      return o;
    }
    // layouts refused for V4 (docs/mapping.md §11.5) are named as such, not left to fail on a missing key
    if (Boolean.TRUE.equals(args.get("dualpipe")) || "dualpipev".equals(args.get("schedules_method"))) {
      throw new IllegalArgumentException("the checkpoint's args (its rank files) say dualpipe: MindSpeed's dualpipev "
          + "layout is not supported for DeepSeek-V4 (its V4 hf2mcore puts layers in other chunks than its trainer and "
          + "mcore2hf expect; docs/mapping.md §11.5)");
    }
    if (Boolean.TRUE.equals(args.get("moe_tp_extend_ep"))) {
      throw new IllegalArgumentException("the checkpoint's args (its rank files) say moe_tp_extend_ep: not supported "
          + "for DeepSeek-V4 (the reference mixes gate and up rows inside each expert; docs/mapping.md §11.5)");
    }
    LayoutOptions.Builder b = o.toBuilder();
    String from = " but the checkpoint's args (its rank files) say ";
    int tp = size(a, args, side + "-tensor-parallel-size", "tensor_model_parallel_size", o.tp(), from);
    int pp = size(a, args, side + "-pipeline-parallel-size", "pipeline_model_parallel_size", o.pp(), from);
    int ep = size(a, args, side + "-expert-parallel-size", "expert_model_parallel_size", o.ep(), from);
    b.tp(tp).pp(pp).ep(ep);
    b.layersPerVirtualStage(size(a, args, prefix + "num-layers-per-virtual-pipeline-stage",
        "num_layers_per_virtual_pipeline_stage", o.layersPerVirtualStage(), from));
    b.mtpLayers(size(a, args, "mtp-num-layers", "mtp_num_layers", o.mtpLayers(), from));
    int etp = size(a, args, ModelTypeFlags.EXPERT_TP, "expert_tensor_parallel_size",
        Math.max(1, o.expertTensorParallel()), from);
    b.expertTensorParallel(etp > 1 ? etp : o.expertTensorParallel());
    int noopCount = listText(args.get("noop_layers")) == null ? 0
        : a.parseIntList("noop_layers", listText(args.get("noop_layers"))).length;
    Object layers = args.get("num_layers");
    if (a.has(prefix + "num-layers") && layers instanceof Number n && o.numLayers() == n.intValue() - noopCount) {
      b.numLayers(n.intValue()); // MindSpeed's V4 meaning: without the noop slots
    } else {
      b.numLayers(size(a, args, prefix + "num-layers", "num_layers", o.numLayers(), from));
    }
    String list = listText(args.get("num_layer_list"));
    if (list != null && !a.has(prefix + "num-layer-list")) {
      b.numLayerList(a.parseIntList(prefix + "num-layer-list", list));
    } else if (list != null && !sameList(list, o.numLayerList())) {
      throw new IllegalArgumentException("--" + prefix + "num-layer-list " + a.get(prefix + "num-layer-list") + from
          + "num_layer_list " + list);
    }
    String noop = listText(args.get("noop_layers"));
    if (noop != null && !a.has(prefix + "noop-layers")) {
      TreeSet<Integer> slots = new TreeSet<>();
      for (int n : a.parseIntList(prefix + "noop-layers", noop)) {
        slots.add(n);
      }
      b.noopLayers(slots);
    } else if (a.has(prefix + "noop-layers") && !o.noopLayers().equals(slotsOf(noop, a, prefix))) {
      throw new IllegalArgumentException("--" + prefix + "noop-layers " + a.get(prefix + "noop-layers") + from
          + "noop_layers " + (noop == null ? "(none)" : noop));
    }
    Object grouped = args.get("moe_grouped_gemm");
    if (grouped instanceof Boolean g) {
      if (a.has(prefix + "moe-grouped-gemm") && !g) {
        throw new IllegalArgumentException("--" + prefix + "moe-grouped-gemm" + from + "moe_grouped_gemm False");
      }
      b.groupedGemm(g);
    }
    boolean tie = args.containsKey("tie_mtp_embeddings_and_lmhead");
    boolean base;
    if (args.get("model_type_hf") instanceof String) {
      // a converter wrote these args, as the model type it converted: deepseek4 writes the tie flag, deepseek4_base
      // does not (§11.8); a flag naming the other type is refused
      base = !tie;
      if (a.has(ModelTypeFlags.MODEL_TYPE) && a.get(ModelTypeFlags.MODEL_TYPE).startsWith("deepseek4")
          && o.v4Base() != base) {
        throw new IllegalArgumentException("--" + ModelTypeFlags.MODEL_TYPE + " " + a.get(ModelTypeFlags.MODEL_TYPE)
            + from + (base ? "deepseek4_base (no tie_mtp_embeddings_and_lmhead)" : "deepseek4 "
            + "(tie_mtp_embeddings_and_lmhead is set)"));
      }
    } else {
      // the trainer's own args: as MindSpeed's mcore2hf merges them under the model type's set values, the Base
      // copies are written only for deepseek4_base and args without the tie flag (deepseek4 sets it)
      base = !tie && o.v4Base();
    }
    b.v4Base(base);
    LayoutOptions filled = b.build();
    // sizes the args alone gave are checked here, so that the message names the args rather than a flag not given
    int real = filled.numLayers() - filled.noopLayers().size();
    if (!a.has(prefix + "num-layers") && filled.numLayers() >= 0 && real != cfg.hiddenLayers) {
      throw new IllegalArgumentException("the checkpoint's args (its rank files) say num_layers " + filled.numLayers()
          + " with " + filled.noopLayers().size() + " noop slot(s), " + real + " HF layers, but config.json ("
          + configPath + ") has num_hidden_layers " + cfg.hiddenLayers);
    }
    if (!a.has("mtp-num-layers") && filled.mtpLayers() > cfg.nextnPredictLayers) {
      throw new IllegalArgumentException("the checkpoint's args (its rank files) say mtp_num_layers "
          + filled.mtpLayers() + " but config.json (" + configPath + ") has num_nextn_predict_layers "
          + cfg.nextnPredictLayers);
    }
    return filled;
  }

  /** A list field as MindSpeed's converter writes it ("43,44") or a trainer's args hold it (a set or list). */
  private static String listText(Object v) {
    if (v instanceof java.util.Collection<?> c) {
      return c.isEmpty() ? null : c.stream().map(String::valueOf).collect(java.util.stream.Collectors.joining(","));
    }
    return v == null ? null : v.toString();
  }

  private static int size(Args a, Map<String, Object> args, String flag, String field, int given, String from) {
    Object v = args.get(field);
    if (!(v instanceof Number)) {
      return given;
    }
    int fromArgs = ((Number) v).intValue();
    if (a.has(flag) && given != fromArgs) {
      throw new IllegalArgumentException("--" + flag + " " + given + from + field + " " + fromArgs);
    }
    return fromArgs;
  }

  private static boolean sameList(String list, int[] given) {
    if (given == null) {
      return false;
    }
    return list.equals(String.join(",", java.util.Arrays.stream(given).mapToObj(String::valueOf).toList()));
  }

  private static TreeSet<Integer> slotsOf(String noop, Args a, String prefix) {
    TreeSet<Integer> out = new TreeSet<>();
    if (noop != null) {
      for (int n : a.parseIntList(prefix + "noop-layers", noop)) {
        out.add(n);
      }
    }
    return out;
  }
}
