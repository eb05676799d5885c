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
    return a.value(side + "-tensor-parallel-size")
        .value(side + "-pipeline-parallel-size")
        .value(side + "-expert-parallel-size")
        .value("num-layers-per-virtual-pipeline-stage")
        .value("num-layer-list")
        .value("noop-layers")
        .value("num-layers")
        .value("first-k-dense-replace")
        .value("mtp-num-layers", "num-nextn-predict-layers")
        .value("schedules-method")
        .value("mcore-key-names")
        .flag("moe-grouped-gemm")
        .flag("moe-tp-extend-ep")
        .flag("mla-mm-split");
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
