package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.ModelConfig;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * MindSpeed-LLM's model-type flags, accepted so that its scripts run unchanged, and checked against what
 * {@code config.json} says: the model family comes from the checkpoint, so the flags can only agree with it or be
 * refused (docs/mapping.md §11.1).
 */
final class ModelTypeFlags {
  static final String MODEL_TYPE = "model-type-hf";
  static final String EXPERT_TP = "expert-tensor-parallel-size";
  static final String LOAD_TYPE = "load-model-type";
  static final String SAVE_TYPE = "save-model-type";
  static final String TRANSFORMER_IMPL = "transformer-impl";
  static final String SAVE_LAYER_BY_LAYER = "save-layer-by-layer";

  private ModelTypeFlags() {}

  static Args define(Args a) {
    return a.value(MODEL_TYPE).help("deepseek3|deepseek4|deepseek4_base", "MindSpeed's model type; checked against "
            + "config.json's model_type, which decides.").defaultValue("from config.json")
        .value(EXPERT_TP).help("N", "Expert tensor-parallel size. DeepSeek-V4: 1 (experts whole on every tp "
            + "rank) or the tp size (per-expert weights split like V3's); V3: checked against the layout.")
        .defaultValue("V4: 1; V3: from the layout")
        .value(LOAD_TYPE).help("hf|mg", "MindSpeed's convert_ckpt_v2.py direction flags; checked against the command.")
        .value(SAVE_TYPE).help("hf|mg", "As --load-model-type, for the output.")
        .value(TRANSFORMER_IMPL).help("local|transformer_engine", "MindSpeed's flag: accepted and ignored (no tensor "
            + "depends on it).")
        .flag(SAVE_LAYER_BY_LAYER).help("MindSpeed's flag: accepted and ignored (rank files are streamed anyway).");
  }

  /** Refuses flags that disagree with the checkpoint or the layout; returns notes for the user. */
  static List<String> check(ConversionRequest r, ModelConfig cfg) {
    List<String> notes = new ArrayList<>();
    Map<String, String> flags = r.options();
    checkDirection(r);
    for (String ignored : List.of(TRANSFORMER_IMPL, SAVE_LAYER_BY_LAYER)) {
      if (flags.containsKey(ignored)) {
        notes.add("--" + ignored + " is accepted for MindSpeed's scripts and ignored: the output does not depend on "
            + "it");
      }
    }
    if (cfg == null) {
      return notes;
    }
    String type = flags.get(MODEL_TYPE);
    if (type != null) {
      boolean v4 = type.equals("deepseek4") || type.equals("deepseek4_base");
      if (!v4 && !type.equals("deepseek3")) {
        throw new IllegalArgumentException("--" + MODEL_TYPE + " must be deepseek3, deepseek4 or deepseek4_base, got \""
            + type + "\"");
      }
      if (v4 != cfg.v4()) {
        throw new IllegalArgumentException("--" + MODEL_TYPE + " " + type + " names DeepSeek-" + (v4 ? "V4" : "V3")
            + " but the checkpoint's config.json is DeepSeek-" + (cfg.v4() ? "V4 (model_type deepseek_v4)"
            : "V3-family (model_type other than deepseek_v4)"));
      }
      if (type.equals("deepseek4_base")) {
        notes.add("--model-type-hf deepseek4_base: the rank files' args lack tie_mtp_embeddings_and_lmhead, so "
            + "mcore2hf writes each MTP layer's own embedding and head back, as copies of the main ones (as "
            + "MindSpeed)");
      }
    }
    String etp = flags.get(EXPERT_TP);
    if (etp != null && !cfg.v4()) { // V4's is a layout setting, checked with the layout
      LayoutOptions layout = r.targetLayout() != null ? r.targetLayout() : r.layout();
      int want = layout.expertTp();
      if (!etp.equals(Integer.toString(want))) {
        throw new IllegalArgumentException("--" + EXPERT_TP + " " + etp + " does not match the layout, whose "
            + "experts are split over " + want + " tensor-parallel rank(s)");
      }
    }
    return notes;
  }

  /** {@code --load-model-type} / {@code --save-model-type} against the command's direction (no model needed). */
  static void checkDirection(ConversionRequest r) {
    boolean hfIn = r.kind() == ConversionRequest.Kind.HF2MCORE || r.kind() == ConversionRequest.Kind.FP8_TO_BF16;
    boolean hfOut = r.kind() != ConversionRequest.Kind.HF2MCORE && r.kind() != ConversionRequest.Kind.MCORE2MCORE;
    direction(r.options(), LOAD_TYPE, hfIn, "input");
    direction(r.options(), SAVE_TYPE, hfOut, "output");
  }

  private static void direction(Map<String, String> flags, String flag, boolean hf, String what) {
    String v = flags.get(flag);
    if (v != null && !v.equals(hf ? "hf" : "mg")) {
      throw new IllegalArgumentException("--" + flag + " " + v + " does not match this command, whose " + what
          + " is " + (hf ? "HuggingFace (hf)" : "Megatron-core (mg)"));
    }
  }
}
