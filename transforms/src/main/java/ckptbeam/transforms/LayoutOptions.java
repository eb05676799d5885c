package ckptbeam.transforms;

import ckptbeam.io.compute.Nf4;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.TreeSet;

/**
 * The parallel layout and variant flags of a conversion, named after the MindSpeed-LLM converter's flags. Unset
 * numeric values are -1 and take their defaults from {@code config.json} in {@link #resolve}.
 */
public final class LayoutOptions implements Serializable {
  private static final long serialVersionUID = 1L;

  /**
   * Whose layout this is, for messages: {@code "target"} (hf2mcore writes it) or {@code "source"} (mcore2hf reads
   * it); a message names the flag the user typed, {@code --target-…} or {@code --source-…}.
   */
  public String side = "target";
  public int tp = 1;
  public int pp = 1;
  public int ep = 1;
  /** {@code --num-layers-per-virtual-pipeline-stage}; 0 when absent. */
  public int layersPerVirtualStage = 0;
  /** {@code --num-layer-list}; null when absent. */
  public int[] numLayerList;
  /** {@code --noop-layers}: global mcore slot numbers. */
  public TreeSet<Integer> noopLayers = new TreeSet<>();
  /** {@code --num-layers}: mcore layer slots including noop slots, excluding MTP; -1 = from config. */
  public int numLayers = -1;
  /** {@code --first-k-dense-replace}; -1 = from config. */
  public int firstKDense = -1;
  /** {@code --mtp-num-layers} / {@code --num-nextn-predict-layers}; 0 like the reference. */
  public int mtpLayers = 0;
  public boolean groupedGemm;
  public boolean tpExtendEp;
  public boolean mlaMmSplit;
  public boolean dualpipe;
  public McoreKeyNames.Scheme keyNames = McoreKeyNames.Scheme.CURRENT;
  /** {@code --qlora-nf4}: the NF4 encoding to quantise the linear weights with, or null. */
  public Nf4.Format nf4;

  /**
   * The key endings {@code --qlora-nf4} quantises (docs/mapping.md §7.1): the {@link TensorMapping} rows marked NF4,
   * in every naming scheme; never embeddings, norms, router or indexer.
   */
  private static final List<String> NF4_SUFFIXES = McoreKeyNames.keyEndings(TensorMapping.nf4Rows());

  /** Whether {@code --qlora-nf4} quantises this mcore key. */
  public boolean quantises(String key) {
    return nf4 != null && NF4_SUFFIXES.stream().anyMatch(key::endsWith);
  }

  /** Fills defaults from the model config and checks every rule; the message names the flag and the numbers. */
  public LayoutOptions resolve(ModelConfig cfg) {
    LayoutOptions o = copy();
    if (o.numLayers < 0) {
      o.numLayers = cfg.hiddenLayers + o.noopLayers.size();
    }
    if (o.firstKDense < 0) {
      o.firstKDense = cfg.firstKDenseReplace;
    }
    o.validate(cfg);
    return o;
  }

  private void validate(ModelConfig cfg) {
    positive(flag("tensor"), tp);
    positive(flag("pipeline"), pp);
    positive(flag("expert"), ep);
    positive("--num-layers", numLayers);
    if (layersPerVirtualStage < 0) {
      fail("--num-layers-per-virtual-pipeline-stage must be positive, got " + layersPerVirtualStage);
    }
    if (dualpipe && layersPerVirtualStage > 0) {
      fail("--schedules-method dualpipev is not compatible with --num-layers-per-virtual-pipeline-stage");
    }
    if (firstKDense > cfg.firstKDenseReplace) {
      fail("--first-k-dense-replace " + firstKDense + " is more than the checkpoint's first_k_dense_replace "
          + cfg.firstKDenseReplace + " (config.json): there are only " + cfg.firstKDenseReplace + " dense layers");
    }
    if (dualpipe && tp > 1 && !tpExtendEp) {
      fail("--schedules-method dualpipev with " + flag("tensor") + " " + tp
          + " needs --moe-tp-extend-ep");
    }
    if (tpExtendEp && !groupedGemm) {
      fail("--moe-tp-extend-ep needs --moe-grouped-gemm (without it the reference writes experts that do not "
          + "convert back, docs/mapping.md §8.7)");
    }
    if (mtpLayers < 0) {
      fail("--mtp-num-layers must not be negative, got " + mtpLayers);
    }
    if (mtpLayers > cfg.nextnPredictLayers) {
      fail("--mtp-num-layers " + mtpLayers + " is more than the checkpoint's num_nextn_predict_layers "
          + cfg.nextnPredictLayers + " (config.json)");
    }
    for (int n : noopLayers) {
      if (n < 0 || n >= numLayers) {
        fail("--noop-layers " + n + " is outside the layer slots 0.." + (numLayers - 1) + " of --num-layers "
            + numLayers);
      }
    }
    int real = numLayers - noopLayers.size();
    if (real <= 0) {
      fail("--noop-layers leaves no real layer out of --num-layers " + numLayers);
    }
    if (numLayerList != null) {
      if (layersPerVirtualStage > 0) {
        fail("--num-layer-list cannot be combined with --num-layers-per-virtual-pipeline-stage");
      }
      if (!noopLayers.isEmpty()) {
        fail("--num-layer-list cannot be combined with --noop-layers");
      }
      if (dualpipe) {
        fail("--num-layer-list cannot be combined with --schedules-method dualpipev");
      }
      if (numLayerList.length != pp) {
        fail("--num-layer-list has " + numLayerList.length + " entries but " + flag("pipeline") + " is " + pp);
      }
      int sum = Arrays.stream(numLayerList).sum();
      for (int a : numLayerList) {
        if (a < 0) {
          fail("--num-layer-list entries must not be negative: " + Arrays.toString(numLayerList));
        }
      }
      if (sum != numLayers) {
        fail("--num-layer-list " + join(numLayerList) + " sums to " + sum + " but --num-layers is " + numLayers);
      }
    } else {
      if (numLayers % pp != 0) {
        fail("--num-layers " + numLayers + " is not divisible by " + flag("pipeline") + " " + pp);
      }
      int perStage = numLayers / pp;
      if (layersPerVirtualStage > 0 && perStage % layersPerVirtualStage != 0) {
        fail("--num-layers-per-virtual-pipeline-stage " + layersPerVirtualStage + " does not divide the "
            + perStage + " layers per pipeline stage (--num-layers " + numLayers + " / " + flag("pipeline") + " "
            + pp + "); the reference would silently drop the remaining layers");
      }
      if (dualpipe && perStage % 2 != 0) {
        fail("--schedules-method dualpipev needs an even number of layers per stage, got " + perStage);
      }
    }
    int hfAvailable = cfg.hiddenLayers;
    int needed = firstKDense < cfg.firstKDenseReplace && !dualpipe
        ? cfg.firstKDenseReplace + (real - firstKDense) : real;
    if (needed > hfAvailable) {
      fail("the layout needs " + needed + " HF decoder layers (--num-layers " + numLayers + " minus "
          + noopLayers.size() + " noop layers" + (needed != real ? ", after skipping dense layers " + firstKDense
          + ".." + (cfg.firstKDenseReplace - 1) : "") + ") but config.json has num_hidden_layers " + hfAvailable);
    }
    divisible("num_attention_heads", cfg.attentionHeads, flag("tensor"), tp);
    divisible("vocab_size", cfg.vocabSize, flag("tensor"), tp);
    divisible("intermediate_size", cfg.intermediateSize, flag("tensor"), tp);
    divisible("hidden_size (eh_proj rows)", cfg.hiddenSize, flag("tensor"), tp);
    if (cfg.sharedExperts > 0) {
      divisible("n_shared_experts * moe_intermediate_size", cfg.sharedIntermediateSize(),
          flag("tensor"), tp);
    }
    if (tpExtendEp) {
      divisible("n_routed_experts", cfg.routedExperts, flag("expert") + " x " + flag("tensor"),
          (long) ep * tp);
    } else {
      divisible("n_routed_experts", cfg.routedExperts, flag("expert"), ep);
      divisible("moe_intermediate_size", cfg.moeIntermediateSize, flag("tensor"), tp);
    }
  }

  /** Number of virtual chunks per stage: 1, (L/pp)/s with VPP, 2 with dualpipe. */
  public int virtualChunks() {
    if (dualpipe) {
      return 2;
    }
    if (layersPerVirtualStage > 0) {
      return numLayers / pp / layersPerVirtualStage;
    }
    return 1;
  }

  /** Whether rank files hold {@code model0 … modelN} instead of {@code model}. */
  public boolean hasVirtualChunks() {
    return dualpipe || layersPerVirtualStage > 0;
  }

  /** Expert-TP degree: tp normally, 1 with {@code --moe-tp-extend-ep}. */
  public int expertTp() {
    return tpExtendEp ? 1 : tp;
  }

  public LayoutOptions copy() {
    LayoutOptions o = new LayoutOptions();
    o.side = side;
    o.tp = tp;
    o.pp = pp;
    o.ep = ep;
    o.layersPerVirtualStage = layersPerVirtualStage;
    o.numLayerList = numLayerList == null ? null : numLayerList.clone();
    o.noopLayers = new TreeSet<>(noopLayers);
    o.numLayers = numLayers;
    o.firstKDense = firstKDense;
    o.mtpLayers = mtpLayers;
    o.groupedGemm = groupedGemm;
    o.tpExtendEp = tpExtendEp;
    o.mlaMmSplit = mlaMmSplit;
    o.dualpipe = dualpipe;
    o.keyNames = keyNames;
    o.nf4 = nf4;
    return o;
  }

  /** The parallel-size flag of this side: {@code --target-tensor-parallel-size}, {@code --source-…}. */
  private String flag(String dim) {
    return "--" + side + "-" + dim + "-parallel-size";
  }

  /** Every field, deterministically: part of a conversion's fingerprint. */
  @Override
  public String toString() {
    return "tp=" + tp + " pp=" + pp + " ep=" + ep + " vpp-layers=" + layersPerVirtualStage + " num-layer-list="
        + (numLayerList == null ? "-" : join(numLayerList)) + " noop=" + noopLayers + " num-layers=" + numLayers
        + " first-k-dense=" + firstKDense + " mtp=" + mtpLayers + " grouped=" + groupedGemm + " tp-extend-ep="
        + tpExtendEp + " mla-mm-split=" + mlaMmSplit + " dualpipe=" + dualpipe + " key-names=" + keyNames + " nf4="
        + nf4;
  }

  private static void positive(String flag, int v) {
    if (v <= 0) {
      fail(flag + " must be positive, got " + v);
    }
  }

  private static void divisible(String field, long value, String flag, long by) {
    if (value % by != 0) {
      fail("config.json " + field + " = " + value + " is not divisible by " + flag + " = " + by);
    }
  }

  private static String join(int[] a) {
    List<String> s = new ArrayList<>();
    for (int x : a) {
      s.add(Integer.toString(x));
    }
    return String.join(",", s);
  }

  private static void fail(String message) {
    throw new IllegalArgumentException(message);
  }
}
