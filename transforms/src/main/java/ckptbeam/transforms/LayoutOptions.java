package ckptbeam.transforms;

import ckptbeam.io.compute.Nf4;
import ckptbeam.transforms.LayoutException.Setting;
import java.util.Arrays;
import java.util.Collection;
import java.util.Collections;
import java.util.List;
import java.util.Objects;
import java.util.SortedSet;
import java.util.TreeSet;
import java.util.stream.Collectors;

/**
 * The parallel layout and variant settings of an mcore checkpoint (the MindSpeed-LLM converter's layout flags, as
 * typed values). Immutable: built with {@link #builder()} or changed with {@link #toBuilder()}. Unset numeric values
 * are -1 and take their defaults from {@code config.json} in {@link #resolve}. Validation errors are
 * {@link LayoutException}s that name settings, not flags: the command line renders them as the flags its user typed.
 */
public final class LayoutOptions implements java.io.Serializable {
  private static final long serialVersionUID = 2L;
  private final int tp;
  private final int pp;
  private final int ep;
  private final int layersPerVirtualStage;
  private final int[] numLayerList;
  private final SortedSet<Integer> noopLayers;
  private final int numLayers;
  private final int firstKDense;
  private final int mtpLayers;
  private final boolean groupedGemm;
  private final boolean tpExtendEp;
  private final boolean mlaMmSplit;
  private final boolean dualpipe;
  private final McoreKeyNames.Scheme keyNames;
  private final Nf4.Format nf4;
  private final boolean v4Base;
  private final int expertTensorParallel;

  /**
   * The key endings {@code --qlora-nf4} quantises (docs/mapping.md §7.1): the {@link TensorMapping} rows marked NF4,
   * in every naming scheme; never embeddings, norms, router or indexer.
   */
  private static final List<String> NF4_SUFFIXES = McoreKeyNames.keyEndings(TensorMapping.nf4Rows());

  private LayoutOptions(Builder b) {
    tp = b.tp;
    pp = b.pp;
    ep = b.ep;
    layersPerVirtualStage = b.layersPerVirtualStage;
    numLayerList = b.numLayerList == null ? null : b.numLayerList.clone();
    noopLayers = Collections.unmodifiableSortedSet(new TreeSet<>(b.noopLayers));
    numLayers = b.numLayers;
    firstKDense = b.firstKDense;
    mtpLayers = b.mtpLayers;
    groupedGemm = b.groupedGemm;
    tpExtendEp = b.tpExtendEp;
    mlaMmSplit = b.mlaMmSplit;
    dualpipe = b.dualpipe;
    keyNames = Objects.requireNonNull(b.keyNames, "keyNames");
    nf4 = b.nf4;
    v4Base = b.v4Base;
    expertTensorParallel = b.expertTensorParallel;
  }

  /** tp = pp = ep = 1, every other setting absent or from the model's config. */
  public static LayoutOptions defaults() {
    return builder().build();
  }

  public static Builder builder() {
    return new Builder();
  }

  /** A builder holding these settings, to change some of them. */
  public Builder toBuilder() {
    Builder b = new Builder();
    b.tp = tp;
    b.pp = pp;
    b.ep = ep;
    b.layersPerVirtualStage = layersPerVirtualStage;
    b.numLayerList = numLayerList;
    b.noopLayers = new TreeSet<>(noopLayers);
    b.numLayers = numLayers;
    b.firstKDense = firstKDense;
    b.mtpLayers = mtpLayers;
    b.groupedGemm = groupedGemm;
    b.tpExtendEp = tpExtendEp;
    b.mlaMmSplit = mlaMmSplit;
    b.dualpipe = dualpipe;
    b.keyNames = keyNames;
    b.nf4 = nf4;
    b.v4Base = v4Base;
    b.expertTensorParallel = expertTensorParallel;
    return b;
  }

  /** Tensor-parallel size. */
  public int tp() {
    return tp;
  }

  /** Pipeline-parallel size (stages). */
  public int pp() {
    return pp;
  }

  /** Expert-parallel size. */
  public int ep() {
    return ep;
  }

  /** Virtual pipeline: layers per chunk; 0 when absent. */
  public int layersPerVirtualStage() {
    return layersPerVirtualStage;
  }

  /** Uneven stages: the layers of each stage, or null. */
  public int[] numLayerList() {
    return numLayerList == null ? null : numLayerList.clone();
  }

  /** Global mcore layer slots left empty. */
  public SortedSet<Integer> noopLayers() {
    return noopLayers;
  }

  /** mcore layer slots including noop slots, excluding MTP; -1 = from config until resolved. */
  public int numLayers() {
    return numLayers;
  }

  /** Dense layers taken before the MoE layers; -1 = the config's {@code first_k_dense_replace} until resolved. */
  public int firstKDense() {
    return firstKDense;
  }

  /** MTP layers, on the last stage; 0 like the reference. */
  public int mtpLayers() {
    return mtpLayers;
  }

  /** Experts as {@code weight1/weight2} instead of {@code local_experts.{l}}. */
  public boolean groupedGemm() {
    return groupedGemm;
  }

  /** Whole experts per TP rank. */
  public boolean tpExtendEp() {
    return tpExtendEp;
  }

  /** Four per-head up-projection matrices instead of two. */
  public boolean mlaMmSplit() {
    return mlaMmSplit;
  }

  /** DualPipeV: two chunks per stage. */
  public boolean dualpipe() {
    return dualpipe;
  }

  public McoreKeyNames.Scheme keyNames() {
    return keyNames;
  }

  /** The NF4 encoding to quantise the linear weights with, or null. */
  public Nf4.Format nf4() {
    return nf4;
  }

  /**
   * DeepSeek-V4: written as MindSpeed's {@code deepseek4_base} type, whose rank files' {@code args} lack
   * {@code tie_mtp_embeddings_and_lmhead} (docs/mapping.md §11.7); false for {@code deepseek4}.
   */
  public boolean v4Base() {
    return v4Base;
  }

  /**
   * {@code --expert-tensor-parallel-size} as given, 0 when not: DeepSeek-V4's per-expert weights are whole on every
   * tp rank at 1 (the default) or split like V3's at tp; V3 derives its expert-TP from the layout ({@link #expertTp}).
   */
  public int expertTensorParallel() {
    return expertTensorParallel;
  }

  /** Whether NF4 quantisation applies to this mcore key. */
  public boolean quantises(String key) {
    return nf4 != null && NF4_SUFFIXES.stream().anyMatch(key::endsWith);
  }

  /** Fills defaults from the model config and checks every rule; the message names the settings and the numbers. */
  public LayoutOptions resolve(ModelConfig cfg) {
    Builder b = toBuilder();
    if (b.numLayers < 0 || cfg.v4() && b.numLayers == cfg.hiddenLayers) {
      // MindSpeed's V4 converter counts --num-layers without the noop slots; V3's (and ours) with them
      b.numLayers = cfg.hiddenLayers + noopLayers.size();
    }
    if (b.firstKDense < 0) {
      b.firstKDense = cfg.firstKDenseReplace;
    }
    // expert-TP is a layout setting of V4 only (V3's follows from the layout), and 1 is V4's default: the same
    // output gets the same fingerprint however it was asked for
    if (!cfg.v4() || b.expertTensorParallel == 1) {
      b.expertTensorParallel = 0;
    }
    LayoutOptions o = b.build();
    o.validate(cfg);
    return o;
  }

  private void validate(ModelConfig cfg) {
    positive(Setting.TP, tp);
    positive(Setting.PP, pp);
    positive(Setting.EP, ep);
    positive(Setting.NUM_LAYERS, numLayers);
    if (layersPerVirtualStage < 0) {
      fail(Setting.LAYERS_PER_VIRTUAL_STAGE, " must be positive, got " + layersPerVirtualStage);
    }
    if (dualpipe && layersPerVirtualStage > 0) {
      fail(Setting.DUALPIPE, " is not compatible with ", Setting.LAYERS_PER_VIRTUAL_STAGE);
    }
    if (firstKDense > cfg.firstKDenseReplace) {
      fail(Setting.FIRST_K_DENSE, " " + firstKDense + " is more than the checkpoint's first_k_dense_replace "
          + cfg.firstKDenseReplace + " (config.json): there are only " + cfg.firstKDenseReplace + " dense layers");
    }
    if (dualpipe && tp > 1 && !tpExtendEp) {
      fail(Setting.DUALPIPE, " with ", Setting.TP, " " + tp + " needs ", Setting.TP_EXTEND_EP);
    }
    if (tpExtendEp && !groupedGemm) {
      fail(Setting.TP_EXTEND_EP, " needs ", Setting.GROUPED_GEMM, " (without it the reference writes experts that "
          + "do not convert back, docs/mapping.md §8.7)");
    }
    if (mtpLayers < 0) {
      fail(Setting.MTP_LAYERS, " must not be negative, got " + mtpLayers);
    }
    checkMtpFits(cfg);
    for (int n : noopLayers) {
      if (n < 0 || n >= numLayers) {
        fail(Setting.NOOP_LAYERS, " " + n + " is outside the layer slots 0.." + (numLayers - 1) + " of ",
            Setting.NUM_LAYERS, " " + numLayers);
      }
    }
    int real = numLayers - noopLayers.size();
    if (real <= 0) {
      fail(Setting.NOOP_LAYERS, " leaves no real layer out of ", Setting.NUM_LAYERS, " " + numLayers);
    }
    if (numLayerList != null) {
      validateLayerList();
    } else {
      if (numLayers % pp != 0) {
        fail(Setting.NUM_LAYERS, " " + numLayers + " is not divisible by ", Setting.PP, " " + pp);
      }
      int perStage = numLayers / pp;
      if (layersPerVirtualStage > 0 && perStage % layersPerVirtualStage != 0) {
        fail(Setting.LAYERS_PER_VIRTUAL_STAGE, " " + layersPerVirtualStage + " does not divide the " + perStage
            + " layers per pipeline stage (", Setting.NUM_LAYERS, " " + numLayers + " / ", Setting.PP, " " + pp
            + "); the reference would silently drop the remaining layers");
      }
      if (dualpipe && perStage % 2 != 0) {
        fail(Setting.DUALPIPE, " needs an even number of layers per stage, got " + perStage);
      }
    }
    int needed = firstKDense < cfg.firstKDenseReplace && !dualpipe
        ? cfg.firstKDenseReplace + (real - firstKDense) : real;
    if (needed > cfg.hiddenLayers) {
      fail("the layout needs " + needed + " HF decoder layers (", Setting.NUM_LAYERS, " " + numLayers + " minus "
          + noopLayers.size() + " noop layers" + (needed != real ? ", after skipping dense layers " + firstKDense
          + ".." + (cfg.firstKDenseReplace - 1) : "") + ") but config.json has num_hidden_layers " + cfg.hiddenLayers);
    }
    if (cfg.v4()) {
      validateV4(cfg);
      return;
    }
    if (v4Base) {
      fail("deepseek4_base is a DeepSeek-V4 model type, but config.json is not DeepSeek-V4");
    }
    divisible("num_attention_heads", cfg.attentionHeads, tp, Setting.TP);
    divisible("vocab_size", cfg.vocabSize, tp, Setting.TP);
    divisible("intermediate_size", cfg.intermediateSize, tp, Setting.TP);
    divisible("hidden_size (eh_proj rows)", cfg.hiddenSize, tp, Setting.TP);
    if (cfg.sharedExperts > 0) {
      divisible("n_shared_experts * moe_intermediate_size", cfg.sharedIntermediateSize(), tp, Setting.TP);
    }
    if (tpExtendEp) {
      divisible("n_routed_experts", cfg.routedExperts, (long) ep * tp, Setting.EP, " x ", Setting.TP);
    } else {
      divisible("n_routed_experts", cfg.routedExperts, ep, Setting.EP);
      divisible("moe_intermediate_size", cfg.moeIntermediateSize, tp, Setting.TP);
    }
  }

  /**
   * DeepSeek-V4 (docs/mapping.md §11.5): experts whole on every tp rank (expert-TP 1); the layouts whose reference
   * output the trainer cannot use are refused, and so are the V3-only options.
   */
  private void validateV4(ModelConfig cfg) {
    String why = " is not supported for DeepSeek-V4";
    if (dualpipe) {
      fail(Setting.DUALPIPE, why + ": MindSpeed's V4 hf2mcore puts layers in other chunks than its trainer and "
          + "mcore2hf expect (docs/mapping.md §11.5)");
    }
    if (tpExtendEp) {
      fail(Setting.TP_EXTEND_EP, why + ": the reference mixes gate and up rows inside each expert (§11.5)");
    }
    if (nf4 != null) {
      fail(Setting.NF4, why + " yet");
    }
    if (keyNames != McoreKeyNames.Scheme.CURRENT) {
      fail(Setting.KEY_NAMES, why + ": V4 only exists with the current key names");
    }
    if (layersPerVirtualStage > 0 && numLayerList == null && layersPerVirtualStage >= numLayers / pp) {
      fail(Setting.LAYERS_PER_VIRTUAL_STAGE, " " + layersPerVirtualStage + " leaves one chunk per stage (",
          Setting.NUM_LAYERS, " " + numLayers + " / ", Setting.PP, " " + pp + "): not a virtual pipeline (§11.5)");
    }
    if (expertTensorParallel > 1 && expertTensorParallel != tp) {
      fail(Setting.EXPERT_TP, " " + expertTensorParallel + " must be 1 or ", Setting.TP, " " + tp);
    }
    if (expertTensorParallel > 1 && groupedGemm) {
      fail(Setting.EXPERT_TP, " " + expertTensorParallel + " with ", Setting.GROUPED_GEMM, why + ": the reference "
          + "copies the whole interleaved slab to every tp rank, which neither its trainer nor its mcore2hf reads "
          + "(§11.5)");
    }
    divisible("num_attention_heads", cfg.attentionHeads, tp, Setting.TP);
    divisible("o_groups", cfg.oGroups, tp, Setting.TP);
    divisible("vocab_size", cfg.vocabSize, tp, Setting.TP);
    divisible("hidden_size (eh_proj rows)", cfg.hiddenSize, tp, Setting.TP);
    divisible("n_shared_experts * moe_intermediate_size", cfg.sharedIntermediateSize(), tp, Setting.TP);
    divisible("n_routed_experts", cfg.routedExperts, ep, Setting.EP);
    if (expertTensorParallel > 1) {
      // per-expert weights split like V3's over the tp ranks
      divisible("moe_intermediate_size", cfg.moeIntermediateSize, tp, Setting.EXPERT_TP);
    }
    if (numLayers - noopLayers.size() != cfg.hiddenLayers) {
      fail(Setting.NUM_LAYERS, " " + numLayers + " minus " + noopLayers.size() + " noop layers is not config.json's "
          + "num_hidden_layers " + cfg.hiddenLayers + ": a V4 layout holds every layer (the compress ratios and hash "
          + "layers are per HF layer)");
    }
  }

  private void validateLayerList() {
    if (layersPerVirtualStage > 0) {
      fail(Setting.NUM_LAYER_LIST, " cannot be combined with ", Setting.LAYERS_PER_VIRTUAL_STAGE);
    }
    if (!noopLayers.isEmpty()) {
      fail(Setting.NUM_LAYER_LIST, " cannot be combined with ", Setting.NOOP_LAYERS);
    }
    if (dualpipe) {
      fail(Setting.NUM_LAYER_LIST, " cannot be combined with ", Setting.DUALPIPE);
    }
    if (numLayerList.length != pp) {
      fail(Setting.NUM_LAYER_LIST, " has " + numLayerList.length + " entries but ", Setting.PP, " is " + pp);
    }
    for (int a : numLayerList) {
      if (a < 0) {
        fail(Setting.NUM_LAYER_LIST, " entries must not be negative: " + Arrays.toString(numLayerList));
      }
    }
    int sum = Arrays.stream(numLayerList).sum();
    if (sum != numLayers) {
      fail(Setting.NUM_LAYER_LIST, " " + join(numLayerList) + " sums to " + sum + " but ", Setting.NUM_LAYERS,
          " is " + numLayers);
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

  /** Expert-TP degree: tp normally, 1 with {@code tpExtendEp}. */
  public int expertTp() {
    return tpExtendEp ? 1 : tp;
  }

  /** Every setting, deterministically: part of a conversion's fingerprint. */
  @Override
  public String toString() {
    return "tp=" + tp + " pp=" + pp + " ep=" + ep + " vpp-layers=" + layersPerVirtualStage + " num-layer-list="
        + (numLayerList == null ? "-" : join(numLayerList)) + " noop=" + noopLayers + " num-layers=" + numLayers
        + " first-k-dense=" + firstKDense + " mtp=" + mtpLayers + " grouped=" + groupedGemm + " tp-extend-ep="
        + tpExtendEp + " mla-mm-split=" + mlaMmSplit + " dualpipe=" + dualpipe + " key-names=" + keyNames + " nf4="
        + nf4 + (v4Base ? " v4-base" : "") + (expertTensorParallel > 0 ? " etp=" + expertTensorParallel : "");
  }

  /** Equal settings, as given (defaults left to the config are compared unresolved). */
  @Override
  public boolean equals(Object o) {
    return o instanceof LayoutOptions && toString().equals(o.toString());
  }

  @Override
  public int hashCode() {
    return toString().hashCode();
  }

  private static void positive(Setting s, int v) {
    if (v <= 0) {
      fail(s, " must be positive, got " + v);
    }
  }

  private static void divisible(String field, long value, long by, Object... setting) {
    Object[] parts = new Object[setting.length + 2];
    parts[0] = "config.json " + field + " = " + value + " is not divisible by ";
    System.arraycopy(setting, 0, parts, 1, setting.length);
    parts[parts.length - 1] = " = " + by;
    if (value % by != 0) {
      fail(parts);
    }
  }

  private static String join(int[] a) {
    return Arrays.stream(a).mapToObj(Integer::toString).collect(Collectors.joining(","));
  }

  /** No more MTP layers than config.json has (also asked of a source layout before its config is adjusted to it). */
  void checkMtpFits(ModelConfig cfg) {
    if (mtpLayers > cfg.nextnPredictLayers) {
      fail(Setting.MTP_LAYERS, " " + mtpLayers + " is more than the checkpoint's num_nextn_predict_layers "
          + cfg.nextnPredictLayers + " (config.json)");
    }
  }

  private static void fail(Object... parts) {
    throw new LayoutException(List.of(parts));
  }

  /** Settings to build a {@link LayoutOptions} from; every setting starts at its default. */
  public static final class Builder {
    private int tp = 1;
    private int pp = 1;
    private int ep = 1;
    private int layersPerVirtualStage = 0;
    private int[] numLayerList;
    private TreeSet<Integer> noopLayers = new TreeSet<>();
    private int numLayers = -1;
    private int firstKDense = -1;
    private int mtpLayers = 0;
    private boolean groupedGemm;
    private boolean tpExtendEp;
    private boolean mlaMmSplit;
    private boolean dualpipe;
    private McoreKeyNames.Scheme keyNames = McoreKeyNames.Scheme.CURRENT;
    private Nf4.Format nf4;
    private boolean v4Base;
    private int expertTensorParallel;

    private Builder() {}

    public Builder tp(int v) {
      tp = v;
      return this;
    }

    public Builder pp(int v) {
      pp = v;
      return this;
    }

    public Builder ep(int v) {
      ep = v;
      return this;
    }

    public Builder layersPerVirtualStage(int v) {
      layersPerVirtualStage = v;
      return this;
    }

    /** Uneven stages (one entry per stage), or null for an even split. */
    public Builder numLayerList(int... v) {
      numLayerList = v == null ? null : v.clone();
      return this;
    }

    public Builder noopLayers(Collection<Integer> v) {
      noopLayers = new TreeSet<>(v);
      return this;
    }

    public Builder numLayers(int v) {
      numLayers = v;
      return this;
    }

    public Builder firstKDense(int v) {
      firstKDense = v;
      return this;
    }

    public Builder mtpLayers(int v) {
      mtpLayers = v;
      return this;
    }

    public Builder groupedGemm(boolean v) {
      groupedGemm = v;
      return this;
    }

    public Builder tpExtendEp(boolean v) {
      tpExtendEp = v;
      return this;
    }

    public Builder mlaMmSplit(boolean v) {
      mlaMmSplit = v;
      return this;
    }

    public Builder dualpipe(boolean v) {
      dualpipe = v;
      return this;
    }

    public Builder keyNames(McoreKeyNames.Scheme v) {
      keyNames = v;
      return this;
    }

    public Builder nf4(Nf4.Format v) {
      nf4 = v;
      return this;
    }

    public Builder v4Base(boolean v) {
      v4Base = v;
      return this;
    }

    /** The expert tensor-parallel size as given; 0 for the default. */
    public Builder expertTensorParallel(int v) {
      expertTensorParallel = v;
      return this;
    }

    public LayoutOptions build() {
      return new LayoutOptions(this);
    }
  }
}
