package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;

/**
 * {@code mcore2hf --save-lora-to-hf} (docs/mapping.md §5.6): the LoRA factors of the trained modules, gathered over TP and
 * written under PEFT names ({@code base_model.model.<HF module>.lora_A.weight}), one file per HF layer. Unlike the
 * reference, the replicated {@code linear_qkv} B factor is read from one rank (§8.9), and the q/kv up-projections,
 * shared experts and the MTP {@code eh_proj} are exported too.
 */
public final class LoraExportPlan extends HfShardsPlan {
  private static final long serialVersionUID = 1L;
  public static final String PREFIX = "base_model.model.";

  private final int rank;
  private final Set<String> modules;
  private transient Map<String, List<AssembledTensor>> files;
  private transient Map<String, Shape> shapes;

  /** @param modules mcore module names to export ({@code linear_qkv}, {@code linear_fc1}, …) */
  public LoraExportPlan(Hf2McorePlan forward, String iterationDir, int rank, List<String> modules) {
    super(forward, iterationDir);
    LayoutOptions o = forward.options();
    if (o.groupedGemm) {
      throw new IllegalArgumentException("--save-lora-to-hf with --moe-grouped-gemm: grouped-GEMM expert LoRA has no "
          + "per-expert HF form (the reference refuses it too)");
    }
    if (o.mlaMmSplit && (modules.contains("linear_q_up_proj") || modules.contains("linear_kv_up_proj"))) {
      throw new IllegalArgumentException("--save-lora-to-hf of the up-projections with --mla-mm-split: the four split "
          + "matrices have separate factors that do not form one HF LoRA pair");
    }
    for (String m : modules) {
      if (!HF_MODULES.containsKey(m)) {
        throw new IllegalArgumentException("--lora-target-modules: unknown module \"" + m + "\" (known: "
            + HF_MODULES.keySet() + ")");
      }
    }
    this.rank = rank;
    this.modules = new LinkedHashSet<>(modules);
  }

  /** mcore module → the HF modules its LoRA becomes (the names adapter_config.json lists, §8.10). */
  static final Map<String, List<String>> HF_MODULES = new LinkedHashMap<>();

  static {
    HF_MODULES.put("linear_qkv", List.of("q_a_proj", "kv_a_proj_with_mqa"));
    HF_MODULES.put("linear_proj", List.of("o_proj"));
    HF_MODULES.put("linear_q_up_proj", List.of("q_b_proj"));
    HF_MODULES.put("linear_kv_up_proj", List.of("kv_b_proj"));
    HF_MODULES.put("linear_fc1", List.of("gate_proj", "up_proj"));
    HF_MODULES.put("linear_fc2", List.of("down_proj"));
    HF_MODULES.put("eh_proj", List.of("eh_proj"));
  }

  /** The HF module names for adapter_config.json, in the order given. */
  /** {@code adapter_config.json} of the PEFT adapter, as PEFT writes it. */
  public ObjectNode adapterConfig(double alpha) {
    ObjectNode adapter =
        new ObjectMapper().createObjectNode();
    adapter.putNull("auto_mapping");
    adapter.putNull("base_model_name_or_path");
    adapter.put("bias", "none");
    adapter.put("fan_in_fan_out", false);
    adapter.put("inference_mode", true);
    adapter.put("init_lora_weights", true);
    adapter.putNull("layers_pattern");
    adapter.putNull("layers_to_transform");
    if (alpha == Math.rint(alpha)) {
      adapter.put("lora_alpha", (long) alpha);
    } else {
      adapter.put("lora_alpha", alpha);
    }
    adapter.put("lora_dropout", 0.0);
    adapter.putArray("modules_to_save");
    adapter.put("peft_type", "LORA");
    adapter.put("r", rank);
    adapter.putNull("revision");
    hfTargetModules().forEach(adapter.putArray("target_modules")::add);
    adapter.put("task_type", "CAUSAL_LM");
    return adapter;
  }

  public List<String> hfTargetModules() {
    List<String> out = new ArrayList<>();
    modules.forEach(m -> out.addAll(HF_MODULES.get(m)));
    return out;
  }

  @Override
  public Map<String, List<AssembledTensor>> files() {
    if (files == null) {
      build();
    }
    return files;
  }

  @Override
  Map<String, Shape> sourceShapes() {
    files();
    return shapes;
  }

  // ---- building ----

  private void build() {
    files = new LinkedHashMap<>();
    shapes = new LinkedHashMap<>();
    ModelConfig c = forward.config();
    LayoutOptions o = forward.options();
    LayerPlacement lp = forward.placement();
    McoreKeyNames keys = new McoreKeyNames(o.keyNames);
    TreeMap<Integer, List<AssembledTensor>> byLayer = new TreeMap<>();
    for (LayerPlacement.Chunk chunk : lp.chunks()) {
      String chunkKey = o.hasVirtualChunks() ? "model" + chunk.v : "model";
      for (LayerPlacement.Placed l : chunk.layers) {
        layer(byLayer.computeIfAbsent(l.hfIndex, k -> new ArrayList<>()), chunk.pp, chunkKey,
            keys.layerPrefix(l.local), l.hfIndex, keys);
      }
      for (int m = 0; m < chunk.mtp.size(); m++) {
        int hf = chunk.mtp.get(m);
        List<AssembledTensor> out = byLayer.computeIfAbsent(hf, k -> new ArrayList<>());
        layer(out, chunk.pp, chunkKey, keys.mtp("mtp_layer", m), hf, keys);
        if (modules.contains("eh_proj")) {
          String x = keys.mtp("mtp_eh_proj", m);
          columnParallel(out, chunk.pp, 0, chunkKey, x.substring(0, x.length() - 7), c.hiddenSize, 2 * c.hiddenSize,
              HfNames.layer(hf, "eh_proj"));
        }
      }
    }
    int total = c.hiddenLayers + o.mtpLayers;
    byLayer.forEach((layer, ts) -> {
      if (!ts.isEmpty()) {
        files.put(SafetensorsIndex.shardName(layer + 1, total), ts);
      }
    });
  }

  private void layer(List<AssembledTensor> out, int pp, String chunk, String prefix, int hf, McoreKeyNames keys) {
    ModelConfig c = forward.config();
    long h = c.hiddenSize;
    String attn = HfNames.layer(hf, "self_attn.");
    if (modules.contains("linear_qkv")) {
      String x = module(prefix, keys.key("qkv"));
      String a = src(pp, 0, 0, chunk, x + ".lora_A.default.weight", rank, h);
      String b = src(pp, 0, 0, chunk, x + ".lora_B.default.weight", c.qkvRows(), rank);
      for (String hfm : new String[] {"q_a_proj", "kv_a_proj_with_mqa"}) {
        emit(out, attn + hfm + ".lora_A.weight", Shape.of(rank, h), List.of(Band.of(SourceSlice.whole(a, rank, h))));
      }
      emit(out, attn + "q_a_proj.lora_B.weight", Shape.of(c.qLoraRank, rank),
          List.of(Band.of(SourceSlice.rows(b, 0, c.qLoraRank, rank))));
      long kv = c.kvLoraRank + c.qkRopeHeadDim;
      emit(out, attn + "kv_a_proj_with_mqa.lora_B.weight", Shape.of(kv, rank),
          List.of(Band.of(SourceSlice.rows(b, c.qLoraRank, kv, rank))));
    }
    if (modules.contains("linear_proj")) {
      rowParallel(out, pp, 0, chunk, module(prefix, keys.key("proj")), h, c.attentionHeads * c.vHeadDim,
          attn + "o_proj");
    }
    if (modules.contains("linear_q_up_proj")) {
      columnParallel(out, pp, 0, chunk, module(prefix, keys.key("q_up")), c.attentionHeads * c.qHeadDim(),
          c.qLoraRank, attn + "q_b_proj");
    }
    if (modules.contains("linear_kv_up_proj")) {
      columnParallel(out, pp, 0, chunk, module(prefix, keys.key("kv_up")), c.attentionHeads * c.kvHeadDim(),
          c.kvLoraRank, attn + "kv_b_proj");
    }
    if (hf < c.firstKDenseReplace) {
      gated(out, pp, 0, chunk, prefix + "mlp.", HfNames.layer(hf, "mlp."), c.intermediateSize);
      return;
    }
    if (c.sharedExperts > 0) {
      gated(out, pp, 0, chunk, prefix + "mlp.shared_experts.", HfNames.layer(hf, "mlp.shared_experts."),
          c.sharedIntermediateSize());
    }
    LayoutOptions o = forward.options();
    long local = c.routedExperts / o.ep;
    for (int r = 0; r < o.ep; r++) {
      for (int l = 0; l < local; l++) {
        gated(out, pp, r, chunk, prefix + "mlp.experts.local_experts." + l + ".",
            HfNames.expert(hf, r * local + l, ""), c.moeIntermediateSize);
      }
    }
  }

  /** fc1 (column-parallel, gate and up interleaved per rank) and fc2 (row-parallel) of one gated MLP. */
  private void gated(List<AssembledTensor> out, int pp, int ep, String chunk, String mcorePrefix, String hfPrefix,
      long width) {
    ModelConfig c = forward.config();
    int tp = forward.options().tp;
    long h = c.hiddenSize;
    long w = width / tp;
    if (modules.contains("linear_fc1")) {
      String x = mcorePrefix + "linear_fc1";
      String a = src(pp, 0, ep, chunk, x + ".lora_A.default.weight", rank, h);
      for (String hfm : new String[] {"gate_proj", "up_proj"}) {
        emit(out, hfPrefix + hfm + ".lora_A.weight", Shape.of(rank, h), List.of(Band.of(SourceSlice.whole(a, rank, h))));
      }
      List<Band> gate = new ArrayList<>();
      List<Band> up = new ArrayList<>();
      for (int t = 0; t < tp; t++) {
        String b = src(pp, t, ep, chunk, x + ".lora_B.default.weight", 2 * w, rank);
        gate.add(Band.of(SourceSlice.rows(b, 0, w, rank)));
        up.add(Band.of(SourceSlice.rows(b, w, w, rank)));
      }
      emit(out, hfPrefix + "gate_proj.lora_B.weight", Shape.of(width, rank), gate);
      emit(out, hfPrefix + "up_proj.lora_B.weight", Shape.of(width, rank), up);
    }
    if (modules.contains("linear_fc2")) {
      rowParallel(out, pp, ep, chunk, mcorePrefix + "linear_fc2", h, width, hfPrefix + "down_proj");
    }
  }

  /** W [out/tp, in] per rank: A [r, in] replicated (rank 0), B [out/tp, r] stacked over tp. */
  private void columnParallel(List<AssembledTensor> out, int pp, int ep, String chunk, String x, long rows, long cols,
      String hfModule) {
    int tp = forward.options().tp;
    String a = src(pp, 0, ep, chunk, x + ".lora_A.default.weight", rank, cols);
    emit(out, hfModule + ".lora_A.weight", Shape.of(rank, cols), List.of(Band.of(SourceSlice.whole(a, rank, cols))));
    List<Band> b = new ArrayList<>();
    for (int t = 0; t < tp; t++) {
      b.add(Band.of(SourceSlice.whole(src(pp, t, ep, chunk, x + ".lora_B.default.weight", rows / tp, rank),
          rows / tp, rank)));
    }
    emit(out, hfModule + ".lora_B.weight", Shape.of(rows, rank), b);
  }

  /** W [out, in/tp] per rank: A [r, in/tp] side by side over tp, B [out, r] replicated (rank 0). */
  private void rowParallel(List<AssembledTensor> out, int pp, int ep, String chunk, String x, long rows, long cols,
      String hfModule) {
    int tp = forward.options().tp;
    List<SourceSlice> a = new ArrayList<>();
    for (int t = 0; t < tp; t++) {
      a.add(SourceSlice.whole(src(pp, t, ep, chunk, x + ".lora_A.default.weight", rank, cols / tp), rank, cols / tp));
    }
    emit(out, hfModule + ".lora_A.weight", Shape.of(rank, cols), List.of(new Band(a)));
    String b = src(pp, 0, ep, chunk, x + ".lora_B.default.weight", rows, rank);
    emit(out, hfModule + ".lora_B.weight", Shape.of(rows, rank), List.of(Band.of(SourceSlice.whole(b, rows, rank))));
  }

  private String src(int pp, int tp, int ep, String chunk, String key, long rows, long cols) {
    LayoutOptions o = forward.options();
    String name = Mcore2HfPlan.sourceName(new RankFile(tp, pp, ep, o.pp, o.ep), chunk, key);
    shapes.put(name, Shape.of(rows, cols));
    return name;
  }

  private static String module(String prefix, String weightKey) {
    return prefix + weightKey.substring(0, weightKey.length() - ".weight".length());
  }

  private static void emit(List<AssembledTensor> out, String hfName, Shape shape, List<Band> bands) {
    out.add(new AssembledTensor(PREFIX + hfName, shape, bands));
  }
}
