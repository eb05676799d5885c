package ckptbeam.pipelines;

import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.McoreKeyNames;

/**
 * The layout flags both directions share, named as in MindSpeed-LLM: {@code --target-…-parallel-size} for
 * hf2mcore, {@code --source-…-parallel-size} for mcore2hf.
 */
final class LayoutFlags {
  private LayoutFlags() {}

  static Args define(Args a, String side) {
    String whose = side.equals("target") ? "of the output" : "the checkpoint was written with";
    return a.value(side + "-tensor-parallel-size").help("N", "Tensor-parallel size " + whose
            + ": splits, replication and the gate/up interleave.").defaultValue("1")
        .value(side + "-pipeline-parallel-size").help("N", "Pipeline stages " + whose
            + ": an even split of --num-layers over the stages.").defaultValue("1")
        .value(side + "-expert-parallel-size").help("N", "Expert-parallel size " + whose
            + ": routed experts spread over the EP ranks, everything else replicated.").defaultValue("1")
        .value("num-layers-per-virtual-pipeline-stage").help("N", "Virtual pipeline: layers per chunk; rank files "
            + "hold model0 ... modelN.")
        .value("num-layer-list").help("a,b,...", "Uneven stages: the layers of each pipeline stage (not with VPP or "
            + "noop layers).")
        .value("noop-layers").help("i,j,...", "Global layer slots left empty.")
        .value("num-layers").help("N", "mcore layer slots including noop slots, excluding MTP.")
        .defaultValue("num_hidden_layers + noop layers")
        .value("first-k-dense-replace").help("K", "Take only the first K dense layers, then the MoE layers.")
        .defaultValue("config.json")
        .value("mtp-num-layers", "num-nextn-predict-layers").help("M", "MTP layers, on the last stage.")
        .defaultValue("0, as MindSpeed")
        .value("schedules-method").help("dualpipev", "DualPipeV layout: two chunks per stage.")
        .value("mcore-key-names").help("current|2025.03", "Key names of current MindSpeed, or of its releases before "
            + "the April/July 2025 renames.").defaultValue("current")
        .flag("moe-grouped-gemm").help("Experts as weight1/weight2 instead of local_experts.{l}.")
        .flag("moe-tp-extend-ep").help("Whole experts per TP rank (needs --moe-grouped-gemm).")
        .flag("mla-mm-split").help("Four per-head up-projection matrices instead of two.");
  }

  static LayoutOptions parse(Args a, String side) {
    LayoutOptions o = new LayoutOptions();
    o.side = side;
    o.tp = a.intValue(side + "-tensor-parallel-size", 1);
    o.pp = a.intValue(side + "-pipeline-parallel-size", 1);
    o.ep = a.intValue(side + "-expert-parallel-size", 1);
    o.layersPerVirtualStage = a.intValue("num-layers-per-virtual-pipeline-stage", 0);
    o.numLayerList = a.intList("num-layer-list");
    int[] noop = a.intList("noop-layers");
    if (noop != null) {
      for (int n : noop) {
        if (!o.noopLayers.add(n)) {
          throw new IllegalArgumentException("--noop-layers lists layer " + n + " twice");
        }
      }
    }
    o.numLayers = a.intValue("num-layers", -1);
    o.firstKDense = a.intValue("first-k-dense-replace", -1);
    o.mtpLayers = a.intValue("mtp-num-layers", 0);
    o.groupedGemm = a.has("moe-grouped-gemm");
    o.tpExtendEp = a.has("moe-tp-extend-ep");
    o.mlaMmSplit = a.has("mla-mm-split");
    if (a.has("schedules-method")) {
      if (!a.get("schedules-method").equals("dualpipev")) {
        throw new IllegalArgumentException("--schedules-method supports only \"dualpipev\", got \""
            + a.get("schedules-method") + "\"");
      }
      o.dualpipe = true;
    }
    if (a.has("mcore-key-names")) {
      o.keyNames = McoreKeyNames.Scheme.fromFlag(a.get("mcore-key-names"));
    }
    return o;
  }
}
