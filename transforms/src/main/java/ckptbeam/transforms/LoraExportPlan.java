package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.transforms.TensorMapping.Part;
import ckptbeam.transforms.TensorMapping.Row;
import ckptbeam.transforms.TensorMapping.Source;
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
    if (o.groupedGemm()) {
      throw new IllegalArgumentException("--save-lora-to-hf with --moe-grouped-gemm: grouped-GEMM expert LoRA has no "
          + "per-expert HF form (the reference refuses it too)");
    }
    if (o.mlaMmSplit() && (modules.contains("linear_q_up_proj") || modules.contains("linear_kv_up_proj"))) {
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

  /**
   * mcore module → the HF modules its LoRA becomes (the names adapter_config.json lists, §8.10): every
   * {@link TensorMapping} row marked for LoRA, layer parts first, then the MTP layer's own.
   */
  static final Map<String, List<String>> HF_MODULES = new LinkedHashMap<>();

  /** The parts whose LoRA modules are exported, in the order a layer's tensors are written. */
  private static final List<Part> LORA_PARTS =
      List.of(Part.ATTENTION, Part.DENSE_MLP, Part.MOE, Part.EXPERT, Part.MTP_INPUT);

  static {
    for (Part part : LORA_PARTS) {
      for (Row row : TensorMapping.ROWS) {
        if (row.part() == part && row.lora()) {
          List<String> hf = HF_MODULES.computeIfAbsent(row.loraModule(), k -> new ArrayList<>());
          row.sources().stream().map(Source::module).filter(m -> !hf.contains(m)).forEach(hf::add);
        }
      }
    }
  }

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
    McoreKeyNames keys = new McoreKeyNames(o.keyNames());
    TreeMap<Integer, List<AssembledTensor>> byLayer = new TreeMap<>();
    for (LayerPlacement.Chunk chunk : lp.chunks()) {
      String chunkKey = o.hasVirtualChunks() ? "model" + chunk.v : "model";
      for (LayerPlacement.Placed l : chunk.layers) {
        layer(byLayer.computeIfAbsent(l.hfIndex(), k -> new ArrayList<>()), chunk.pp, chunkKey,
            keys.layerPrefix(l.local()), l.hfIndex(), keys);
      }
      for (int m = 0; m < chunk.mtp.size(); m++) {
        int hf = chunk.mtp.get(m);
        List<AssembledTensor> out = byLayer.computeIfAbsent(hf, k -> new ArrayList<>());
        layer(out, chunk.pp, chunkKey, keys.mtp("mtp_layer", m), hf, keys);
        for (Row row : loraRows(Part.MTP_INPUT)) {
          export(out, row, chunk.pp, 0, chunkKey, keys.mtp(row.logical(), m), hf, -1);
        }
      }
    }
    int total = c.hiddenLayers + o.mtpLayers();
    byLayer.forEach((layer, ts) -> {
      if (!ts.isEmpty()) {
        files.put(SafetensorsIndex.shardName(layer + 1, total), ts);
      }
    });
  }

  private void layer(List<AssembledTensor> out, int pp, String chunk, String prefix, int hf, McoreKeyNames keys) {
    ModelConfig c = forward.config();
    layerPart(out, Part.ATTENTION, pp, chunk, prefix, hf, keys);
    if (hf < c.firstKDenseReplace) {
      layerPart(out, Part.DENSE_MLP, pp, chunk, prefix, hf, keys);
      return;
    }
    layerPart(out, Part.MOE, pp, chunk, prefix, hf, keys);
    long local = c.routedExperts / forward.options().ep();
    for (int r = 0; r < forward.options().ep(); r++) {
      for (int l = 0; l < local; l++) {
        for (Row row : loraRows(Part.EXPERT)) {
          export(out, row, pp, r, chunk, prefix + keys.expert(row.logical(), l), hf, r * local + l);
        }
      }
    }
  }

  /** The factors of a part's modules that have one key per layer (ep rank 0: they are the same on every ep rank). */
  private void layerPart(List<AssembledTensor> out, Part part, int pp, String chunk, String prefix, int hf,
      McoreKeyNames keys) {
    for (Row row : loraRows(part)) {
      export(out, row, pp, 0, chunk, prefix + keys.key(row.logical()), hf, -1);
    }
  }

  /** The rows of a part whose LoRA factors this export writes. */
  private List<Row> loraRows(Part part) {
    List<Row> out = new ArrayList<>();
    for (Row row : forward.rows(part)) {
      if (row.lora() && modules.contains(row.loraModule())) {
        out.add(row);
      }
    }
    return out;
  }

  /** The factors of one module ({@code key} is its weight's mcore key), gathered the way its base is split. */
  private void export(List<AssembledTensor> out, Row row, int pp, int ep, String chunk, String key, int hf,
      long expert) {
    ModelConfig c = forward.config();
    String x = key.substring(0, key.length() - ".weight".length());
    List<String> hfModules = new ArrayList<>();
    List<long[]> dims = new ArrayList<>();
    for (Source s : row.sources()) {
      String name = s.hfName(c, hf, expert);
      hfModules.add(name.substring(0, name.length() - ".weight".length()));
      dims.add(s.shape(c));
    }
    long[] d = dims.get(0);
    switch (row.split()) {
      case STACKED:
        stacked(out, pp, ep, chunk, x, dims, hfModules);
        break;
      case ROWS:
        columnParallel(out, pp, ep, chunk, x, d[0], d[1], hfModules.get(0));
        break;
      case COLUMNS:
        rowParallel(out, pp, ep, chunk, x, d[0], d[1], hfModules.get(0));
        break;
      case GATED:
        gated(out, pp, ep, chunk, x, d[0], d[1], hfModules);
        break;
      default:
        throw new IllegalStateException("no HF LoRA form for a " + row.split() + " tensor: " + key);
    }
  }

  /** A replicated stack of whole sources ({@code linear_qkv}): one A for every HF module, B's rows split by source. */
  private void stacked(List<AssembledTensor> out, int pp, int ep, String chunk, String x, List<long[]> dims,
      List<String> hfModules) {
    long in = dims.get(0)[1];
    long total = dims.stream().mapToLong(d -> d[0]).sum();
    String a = src(pp, 0, ep, chunk, x + ".lora_A.default.weight", rank, in);
    for (String hfm : hfModules) {
      emit(out, hfm + ".lora_A.weight", Shape.of(rank, in), List.of(Band.of(SourceSlice.whole(a, rank, in))));
    }
    String b = src(pp, 0, ep, chunk, x + ".lora_B.default.weight", total, rank);
    long offset = 0;
    for (int i = 0; i < hfModules.size(); i++) {
      long rows = dims.get(i)[0];
      emit(out, hfModules.get(i) + ".lora_B.weight", Shape.of(rows, rank),
          List.of(Band.of(SourceSlice.rows(b, offset, rows, rank))));
      offset += rows;
    }
  }

  /** fc1 (column-parallel, gate and up interleaved per rank): A replicated, B's halves per rank to gate and up. */
  private void gated(List<AssembledTensor> out, int pp, int ep, String chunk, String x, long width, long in,
      List<String> hfModules) {
    int tp = forward.options().tp();
    long w = width / tp;
    String a = src(pp, 0, ep, chunk, x + ".lora_A.default.weight", rank, in);
    for (String hfm : hfModules) {
      emit(out, hfm + ".lora_A.weight", Shape.of(rank, in), List.of(Band.of(SourceSlice.whole(a, rank, in))));
    }
    List<Band> gate = new ArrayList<>();
    List<Band> up = new ArrayList<>();
    for (int t = 0; t < tp; t++) {
      String b = src(pp, t, ep, chunk, x + ".lora_B.default.weight", 2 * w, rank);
      gate.add(Band.of(SourceSlice.rows(b, 0, w, rank)));
      up.add(Band.of(SourceSlice.rows(b, w, w, rank)));
    }
    emit(out, hfModules.get(0) + ".lora_B.weight", Shape.of(width, rank), gate);
    emit(out, hfModules.get(1) + ".lora_B.weight", Shape.of(width, rank), up);
  }

  /** W [out/tp, in] per rank: A [r, in] replicated (rank 0), B [out/tp, r] stacked over tp. */
  private void columnParallel(List<AssembledTensor> out, int pp, int ep, String chunk, String x, long rows, long cols,
      String hfModule) {
    int tp = forward.options().tp();
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
    int tp = forward.options().tp();
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
    String name = Mcore2HfPlan.sourceName(new RankFile(tp, pp, ep, o.pp(), o.ep()), chunk, key);
    shapes.put(name, Shape.of(rows, cols));
    return name;
  }

  private static void emit(List<AssembledTensor> out, String hfName, Shape shape, List<Band> bands) {
    out.add(new AssembledTensor(PREFIX + hfName, shape, bands));
  }
}
