package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.function.Consumer;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * DeepSeek-V4's mapping (docs/mapping.md §11) against the spec's worked examples at V4-Flash's real sizes: which
 * tensors each rank file holds, in which shapes, and that mcore → HF rebuilds every HF tensor.
 */
class DeepSeekV4MappingTest {
  /** V4-Flash's config.json (spec §1.1): 43 layers, ratios 0, 0, then 4 and 128 alternating; MTP entry 0. */
  static String flash(int layers, int experts) {
    String ratios = IntStream.range(0, layers + 1).mapToObj(i -> i < 2 || i >= layers ? "0" : i % 2 == 0 ? "4" : "128")
        .collect(Collectors.joining(","));
    return "{\"model_type\":\"deepseek_v4\",\"hidden_size\":4096,\"vocab_size\":129280,\"num_attention_heads\":64,"
        + "\"head_dim\":512,\"qk_rope_head_dim\":64,\"q_lora_rank\":1024,\"o_lora_rank\":1024,\"o_groups\":8,"
        + "\"n_routed_experts\":" + experts + ",\"num_experts_per_tok\":6,\"moe_intermediate_size\":2048,"
        + "\"n_shared_experts\":1,\"hc_mult\":4,\"index_n_heads\":64,\"index_head_dim\":128,"
        + "\"num_hidden_layers\":" + layers + ",\"num_nextn_predict_layers\":1,\"num_hash_layers\":3,"
        + "\"compress_ratios\":[" + ratios + "],\"tie_word_embeddings\":false}";
  }

  private static final ModelConfig FLASH = Configs.parse(flash(43, 256));

  private static Map<String, Shape> keys(Hf2McorePlan plan, String dir, String chunk) {
    for (RankFile f : plan.rankFiles()) {
      if (f.dirName().equals(dir)) {
        Map<String, Shape> out = new LinkedHashMap<>();
        plan.contents(f).get(chunk).forEach(t -> out.put(t.key(), t.shape()));
        return out;
      }
    }
    throw new AssertionError("no rank file " + dir);
  }

  @Test
  void flashConfigReadsAsV4() {
    assertEquals(ModelConfig.Family.V4, FLASH.family);
    assertFalse(FLASH.dsaIndexer(), "V4's indexer is not V3.2's");
    assertEquals(0, FLASH.compressRatio(0));
    assertEquals(4, FLASH.compressRatio(2));
    assertEquals(128, FLASH.compressRatio(3));
    assertEquals(0, FLASH.compressRatio(43), "the MTP entry is never consulted");
    assertTrue(FLASH.hashLayer(2));
    assertFalse(FLASH.hashLayer(3));
    assertEquals(24, FLASH.mhcMix());
  }

  @Test
  void compressRatiosFollowTheReferenceRules() throws IOException {
    String ok = flash(4, 8);
    // a -0731 config's two reserved trailing zeros are dropped
    ModelConfig c = parse(ok.replace("[0,0,4,128,0]", "[0,0,4,128,0,0,0]"));
    assertArrayEquals(new int[] {0, 0, 4, 128, 0}, c.compressRatios());
    IOException len = assertThrows(IOException.class, () -> parse(ok.replace("[0,0,4,128,0]", "[0,0,4,128]")));
    assertTrue(len.getMessage().contains("compress_ratios\" has 4 entries"), len.getMessage());
    IOException one = assertThrows(IOException.class, () -> parse(ok.replace("[0,0,4,128,0]", "[0,1,4,128,0]")));
    assertTrue(one.getMessage().contains("entry 1 is 1"), one.getMessage());
    // the release: FP8 and MXFP4 with e8m0 scales named <module>.scale
    ModelConfig release = parse(ok.replace("{", "{\"quantization_config\":{\"quant_method\":\"fp8\","
        + "\"fmt\":\"e4m3\",\"scale_fmt\":\"ue8m0\",\"weight_block_size\":[128,128]},"));
    assertTrue(release.fp8);
    assertEquals("layers.0.attn.wq_a.scale", release.scaleName("layers.0.attn.wq_a.weight"));
    assertEquals("layers.0.attn.wo_a.scale", release.scaleName("layers.0.attn.wo_a"));
    assertEquals("layers.0.attn.wo_a", release.weightOfScale("layers.0.attn.wo_a.scale",
        n -> n.equals("layers.0.attn.wo_a")));
    IOException q = assertThrows(IOException.class,
        () -> parse(ok.replace("{", "{\"quantization_config\":{\"quant_method\":\"awq\"},")));
    assertTrue(q.getMessage().contains("only DeepSeek's \"fp8\""), q.getMessage());
  }

  /** A 1-byte tensor of the release without a scale is refused by name, not passed through as raw bytes (§8 #31). */
  @Test
  void aOneByteTensorWithoutAScaleIsRefusedByName() throws IOException {
    ModelConfig release = parse(flash(4, 8).replace("{", "{\"quantization_config\":{\"quant_method\":\"fp8\","
        + "\"fmt\":\"e4m3\",\"scale_fmt\":\"ue8m0\",\"weight_block_size\":[128,128]},"));
    for (DType dtype : List.of(DType.U8, DType.F8_E5M2)) {
      Map<String, TensorLocation> located = Map.of("layers.0.attn.wq_a.weight", new TensorLocation(
          "layers.0.attn.wq_a.weight", "model-1.safetensors", dtype, Shape.of(16, 16), 0));
      IOException e = assertThrows(IOException.class, () -> SourceLocator.dequantizeFp8(located, release));
      assertTrue(e.getMessage().contains("\"layers.0.attn.wq_a.weight\" is " + dtype + ": DeepSeek's quantised "
          + "weights are F8_E4M3 or MXFP4 (I8)"), e.getMessage());
    }
  }

  /** A V4 release's FP8 weights refuse non-finite results whatever their scales' dtype (float32 ones too). */
  @Test
  void v4Fp8WeightsAreReadFiniteOnlyWithAnyScaleDtype(@org.junit.jupiter.api.io.TempDir java.nio.file.Path dir)
      throws IOException {
    String file = dir.resolve("m.safetensors").toString(); // the planner reads the scales: four float32 ones
    java.nio.ByteBuffer scales = java.nio.ByteBuffer.allocate(65536 + 16).order(java.nio.ByteOrder.LITTLE_ENDIAN);
    for (int i = 0; i < 4; i++) {
      scales.putFloat(65536 + 4 * i, 1f);
    }
    java.nio.file.Files.write(java.nio.file.Path.of(file), scales.array());
    ModelConfig release = parse(flash(4, 8).replace("{", "{\"quantization_config\":{\"quant_method\":\"fp8\","
        + "\"fmt\":\"e4m3\",\"scale_fmt\":\"ue8m0\",\"weight_block_size\":[128,128]},"));
    Map<String, TensorLocation> located = new LinkedHashMap<>();
    located.put("layers.0.attn.wq_a.weight", new TensorLocation("layers.0.attn.wq_a.weight", file, DType.F8_E4M3,
        Shape.of(256, 256), 0));
    located.put("layers.0.attn.wq_a.scale", new TensorLocation("layers.0.attn.wq_a.scale", file, DType.F32,
        Shape.of(2, 2), 65536));
    TensorLocation view = SourceLocator.dequantizeFp8(located, release).get("layers.0.attn.wq_a.weight");
    assertTrue(((ckptbeam.io.compute.Fp8Dequant) view.computed()).finiteOnly);
  }

  private static ModelConfig parse(String json) throws IOException {
    return ModelConfig.parse("config.json", json.getBytes(StandardCharsets.UTF_8));
  }

  /** Spec §4.7 example A: the shipped Flash hf2mcore layout. */
  @Test
  void shippedFlashLayoutPlacesLayersAndTensorsAsTheReference() {
    LayoutOptions o = LayoutOptions.builder().pp(4).ep(32).noopLayers(List.of(43)).mtpLayers(1).groupedGemm(true)
        .build().resolve(FLASH);
    Hf2McorePlan plan = new Hf2McorePlan(FLASH, o);
    assertEquals(128, plan.rankFiles().size());
    Map<String, Shape> first = keys(plan, "mp_rank_00_000_000", "model");
    // 1 embedding + HF 0, 1 (22 keys) + 2, 4, 6, 8, 10 (compressor + indexer: 32) + 3, 5, 7, 9 (compressor: 26)
    assertEquals(1 + 2 * 22 + 5 * 32 + 4 * 26, first.size());
    assertEquals(Shape.of(129280, 4096), first.get("embedding.word_embeddings.weight"));
    assertTrue(first.containsKey("decoder.layers.0.mlp.router.tid2eid"));
    assertFalse(first.containsKey("decoder.layers.0.mlp.router.expert_bias"));
    assertTrue(first.containsKey("decoder.layers.3.mlp.router.expert_bias"));
    assertFalse(first.containsKey("decoder.layers.1.self_attention.compressor.ape"));
    assertEquals(Shape.of(4, 1024), first.get("decoder.layers.2.self_attention.compressor.ape"));
    assertEquals(Shape.of(128, 512), first.get("decoder.layers.3.self_attention.compressor.ape"));
    assertEquals(Shape.of(1024, 4096), first.get("decoder.layers.2.self_attention.compressor.wkv.weight"));
    assertEquals(Shape.of(4, 256), first.get("decoder.layers.2.self_attention.indexer.kv_compressor.ape"));
    assertFalse(first.containsKey("decoder.layers.3.self_attention.indexer.wq_b.weight"));
    assertEquals(Shape.of(4096, 8 * 2 * 2048), first.get("decoder.layers.0.mlp.experts.weight1"));
    assertEquals(Shape.of(8 * 2048, 4096), first.get("decoder.layers.0.mlp.experts.weight2"));
    assertEquals(Shape.of(24, 16384), first.get("decoder.layers.0.attn_mhc.hc_fn.weight"));

    Map<String, Shape> last = keys(plan, "mp_rank_00_003_031", "model");
    // MTP (29 + the embedding copy), HF 33..42 in slots 0..9 (33, 35, ..., 41 ratio 128; 34, ..., 42 ratio 4), final 5
    assertEquals(30 + 5 * 26 + 5 * 32 + 5, last.size());
    assertTrue(last.containsKey("mtp.layers.0.transformer_layer.mlp.router.expert_bias"));
    assertFalse(last.containsKey("mtp.layers.0.transformer_layer.self_attention.compressor.ape"));
    assertEquals(Shape.of(4096, 8192), last.get("mtp.layers.0.eh_proj.weight"));
    assertTrue(last.containsKey("mtp.layers.0.hc_head.hc_fn.weight"));
    assertTrue(last.containsKey("mtp.final_layernorms.0.weight"));
    assertTrue(last.containsKey("embedding.word_embeddings.weight"));
    assertTrue(last.containsKey("decoder.layers.9.input_layernorm.weight"));
    assertFalse(last.containsKey("decoder.layers.10.input_layernorm.weight"), "slot 10 is the noop slot");
    assertTrue(last.containsKey("final_layernorm.weight"), "top-level, with or without MTP");
    assertEquals(Shape.of(1), last.get("hc_head.hc_scale"));
    List<String> order = new ArrayList<>(last.keySet());
    assertEquals("mtp.layers.0.enorm.weight", order.get(0));
    assertEquals("hc_head.hc_scale", order.get(order.size() - 1));
  }

  /** Spec §4.7 example B: per-rank shapes of the training layout at tp 2 (only two of its 512 files planned). */
  @Test
  void trainingLayoutSplitsOverTwoTensorRanks() {
    LayoutOptions o = LayoutOptions.builder().tp(2).pp(2).ep(128).layersPerVirtualStage(11)
        .noopLayers(List.of(43)).mtpLayers(1).groupedGemm(true).build().resolve(FLASH);
    Hf2McorePlan plan = new Hf2McorePlan(FLASH, o);
    Map<String, Shape> t0 = keys(plan, "mp_rank_00_001_005", "model1");
    Map<String, Shape> t1 = keys(plan, "mp_rank_01_001_005", "model1");
    String l = "decoder.layers.0.";
    assertEquals(Shape.of(32), t0.get(l + "self_attention.attn_sink"));
    assertEquals(Shape.of(16384, 1024), t0.get(l + "self_attention.linear_q_up_proj.weight"));
    assertEquals(Shape.of(4096, 4096), t0.get(l + "self_attention.linear_o_down_proj.weight"));
    assertEquals(Shape.of(4096, 4096), t0.get(l + "self_attention.linear_o_up_proj.weight"));
    assertEquals(Shape.of(2048, 4096), t0.get(l + "mlp.shared_experts.linear_fc1.weight"));
    assertEquals(Shape.of(4096, 1024), t0.get(l + "mlp.shared_experts.linear_fc2.weight"));
    assertEquals(Shape.of(2048, 8192), t0.get("mtp.layers.0.eh_proj.weight"));
    assertEquals(Shape.of(64640, 4096), t0.get("output_layer.weight"));
    assertEquals(Shape.of(4096, 8192), t0.get(l + "mlp.experts.weight1"));
    assertEquals(Shape.of(4096, 4096), t0.get(l + "mlp.experts.weight2"));
    assertEquals(t0, t1);
    // the expert slab is the same on both tp ranks: experts 10 and 11 of HF layer 33, unsplit
    AssembledTensor w0 = tensor(plan, "mp_rank_00_001_005", "model1", l + "mlp.experts.weight1");
    AssembledTensor w1 = tensor(plan, "mp_rank_01_001_005", "model1", l + "mlp.experts.weight1");
    assertEquals(slices(w0), slices(w1));
    SourceSlice gate = w0.bands().get(0).slices().get(0);
    assertEquals("layers.33.ffn.experts.10.w1.weight", gate.source());
    assertEquals(2048, gate.rowCount());
    // eh_proj: rank 1 holds rows 2048.. of e_proj and h_proj, side by side
    AssembledTensor eh = tensor(plan, "mp_rank_01_001_005", "model1", "mtp.layers.0.eh_proj.weight");
    Band band = eh.bands().get(0);
    assertEquals(List.of("mtp.0.e_proj.weight", "mtp.0.h_proj.weight"),
        band.slices().stream().map(SourceSlice::source).collect(Collectors.toList()));
    assertEquals(2048, band.slices().get(1).rowStart());
  }

  private static List<String> slices(AssembledTensor t) {
    return t.bands().stream().flatMap(b -> b.slices().stream()).map(SourceSlice::toString)
        .collect(Collectors.toList());
  }

  private static AssembledTensor tensor(Hf2McorePlan plan, String dir, String chunk, String key) {
    for (RankFile f : plan.rankFiles()) {
      if (f.dirName().equals(dir)) {
        return plan.contents(f).get(chunk).stream().filter(t -> t.key().equals(key)).findFirst().orElseThrow();
      }
    }
    throw new AssertionError(dir);
  }

  /** A small V4 (Flash's matrices, 6 layers, 8 experts) over the layout families the reference writes correctly. */
  private static final ModelConfig SMALL = Configs.parse(flash(6, 8));

  private static LayoutOptions layout(String name) {
    LayoutOptions.Builder o = LayoutOptions.builder().mtpLayers(1);
    Map<String, Consumer<LayoutOptions.Builder>> layouts = Map.of(
        "tp2 pp2 ep2 grouped noop", l -> { l.tp(2); l.pp(2); l.ep(2); l.groupedGemm(true); l.numLayers(8);
          l.noopLayers(List.of(6, 7)); },
        "tp2 ep4 per-expert", l -> { l.tp(2); l.ep(4); },
        "pp2 vpp noop", l -> { l.pp(2); l.numLayers(8); l.noopLayers(List.of(3, 7)); l.layersPerVirtualStage(2); },
        "pp2 num-layer-list", l -> { l.pp(2); l.numLayerList(2, 4); l.groupedGemm(true); },
        "tp4 pp1 without mtp", l -> { l.tp(4); l.mtpLayers(0); },
        "tp2 per-expert at expert-TP 2", l -> { l.tp(2); l.ep(2); l.expertTensorParallel(2); },
        "tp4 ep2 grouped", l -> { l.tp(4); l.ep(2); l.groupedGemm(true); });
    layouts.get(name).accept(o);
    return o.build();
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"tp2 pp2 ep2 grouped noop", "tp2 ep4 per-expert", "pp2 vpp noop", "pp2 num-layer-list",
      "tp4 pp1 without mtp", "tp2 per-expert at expert-TP 2", "tp4 ep2 grouped"})
  void mcore2hfRebuildsEveryHfTensorOnceInItsLayersFile(String name) {
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(SMALL, layout(name));
    Mcore2HfPlan back = new Mcore2HfPlan(forward, "iter_0000001");
    Map<String, Shape> written = back.sourceShapes();
    Map<String, Shape> rebuilt = new TreeMap<>();
    Map<String, String> fileOf = new TreeMap<>();
    for (Map.Entry<String, List<AssembledTensor>> file : back.files().entrySet()) {
      for (AssembledTensor t : file.getValue()) {
        for (Band b : t.bands()) {
          b.slices().forEach(s -> assertTrue(s.fitsIn(written.get(s.source())), t.key() + " reads " + s));
        }
        assertEquals(null, rebuilt.put(t.key(), t.shape()), t.key() + " is in one HF file only");
        fileOf.put(t.key(), file.getKey());
      }
    }
    Map<String, Shape> inventory = new TreeMap<>();
    Map<String, DType> dtypes = new TreeMap<>();
    HfInventory.of(forward.config()).forEach(e -> {
      inventory.put(e.name(), e.shape());
      dtypes.put(e.name(), e.dtype());
    });
    assertEquals(inventory, rebuilt, "every tensor of the HF model, in its shape");
    int mtp = forward.options().mtpLayers();
    int files = 6 + mtp;
    assertEquals(files, back.files().size(), "one file per HF layer");
    assertEquals(String.format("model-00001-of-%06d.safetensors", files), fileOf.get("embed.weight"));
    assertEquals(String.format("model-00006-of-%06d.safetensors", files), fileOf.get("hc_head_fn"));
    assertEquals(String.format("model-00006-of-%06d.safetensors", files), fileOf.get("head.weight"));
    if (mtp > 0) {
      assertEquals("model-00007-of-000007.safetensors", fileOf.get("mtp.0.e_proj.weight"));
    }
    assertEquals(DType.I32, dtypes.get("layers.0.ffn.gate.tid2eid"));
    assertEquals(DType.F32, dtypes.get("layers.5.attn.attn_sink"));
    assertTrue(inventory.containsKey("layers.4.attn.indexer.compressor.ape"));
    assertFalse(inventory.containsKey("layers.5.attn.indexer.compressor.ape"));
  }

  /**
   * At expert-TP 1 mcore2hf reads only the (tp, ep) pairs MindSpeed's trainer saves (spec §2.2.1), which hold every
   * tensor (the test above rebuilds the model from them); at expert-TP = tp every pair holds its own expert slices.
   */
  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "tp2 ep4 per-expert | mp_rank_00_000 mp_rank_01_001 mp_rank_00_002 mp_rank_01_003",
      "tp4 ep2 grouped | mp_rank_00_000 mp_rank_01_001 mp_rank_02_000 mp_rank_03_001",
      "tp2 per-expert at expert-TP 2 | mp_rank_00_000 mp_rank_00_001 mp_rank_01_000 mp_rank_01_001",
      "tp4 pp1 without mtp | mp_rank_00 mp_rank_01 mp_rank_02 mp_rank_03"})
  void mcore2hfReadsTheRankPairsTheTrainerSaves(String name, String dirs) {
    Mcore2HfPlan back = new Mcore2HfPlan(Mcore2HfPlan.forwardPlan(SMALL, layout(name)), "iter_0000001");
    List<String> read = back.rankFiles().stream().map(p -> p.split("/")[1]).sorted().toList();
    assertEquals(List.of(dirs.split(" ")).stream().sorted().toList(), read);
    assertEquals(read.size(), back.sourceShapes().keySet().stream().map(k -> k.split(":")[0]).distinct().count(),
        "every file read holds a source");
  }

  /** A source layout holding more layers than config.json describes is refused before anything is planned for them. */
  @Test
  void aSourceLayoutBeyondTheConfigIsRefusedBeforePlanning() {
    LayoutException layers = assertThrows(LayoutException.class, () -> Mcore2HfPlan.forwardPlan(SMALL,
        LayoutOptions.builder().numLayers(1_000_000_000).build()));
    assertTrue(layers.getMessage().contains("the layout holds 1000000000 HF decoder layers"), layers.getMessage());
    LayoutException mtp = assertThrows(LayoutException.class, () -> Mcore2HfPlan.forwardPlan(SMALL,
        LayoutOptions.builder().mtpLayers(1_000_000_000).build()));
    assertTrue(mtp.getMessage().contains("1000000000 is more than the checkpoint's num_nextn_predict_layers"),
        mtp.getMessage());
  }

  @Test
  void numLayersInEitherMeaningGivesTheSameLayout() {
    // MindSpeed's V4 converter counts --num-layers without noop slots (6), ours with them (8)
    LayoutOptions theirs = LayoutOptions.builder().pp(2).numLayers(6).noopLayers(List.of(6, 7)).build().resolve(SMALL);
    LayoutOptions ours = LayoutOptions.builder().pp(2).numLayers(8).noopLayers(List.of(6, 7)).build().resolve(SMALL);
    assertEquals(8, theirs.numLayers());
    assertEquals(ours, theirs);
  }

  /** The copies mcore2hf compares: tensors replicated over tp or ep ranks, not the ones split over them. */
  @Test
  void replicasAreTheTensorsTheLayoutCopiesOverRanks() {
    LayoutOptions o = LayoutOptions.builder().tp(2).ep(2).groupedGemm(true).build().resolve(SMALL);
    Mcore2HfPlan plan = new Mcore2HfPlan(new Hf2McorePlan(SMALL, o), "iter_0000001");
    List<List<String>> groups = plan.replicas(1L << 40);
    List<String> norm = groups.stream().filter(g -> g.get(0).endsWith("decoder.layers.0.input_layernorm.weight"))
        .findFirst().orElseThrow();
    // expert-TP 1: every (tp, ep) pair is read only where the trainer saves it; each holds the norm
    assertEquals(plan.rankFilesRead().size(), norm.size(), norm.toString());
    assertTrue(groups.stream().flatMap(List::stream).noneMatch(n -> n.endsWith("attn_sink")
        || n.endsWith("word_embeddings.weight")), "split and embedding tensors are not replicas");
    assertTrue(plan.replicas(3).stream().allMatch(g -> g.get(0).contains("hc_scale")), "only tensors up to the size "
        + "asked for: the mHC scales of 1 and 3 elements");
  }

  /** MindSpeed accepts --mla-mm-split for V4 and writes the same tensors: V4 has no up-projections to split. */
  @Test
  void mlaMmSplitChangesNoV4Tensor() {
    Hf2McorePlan plain = new Hf2McorePlan(SMALL, LayoutOptions.builder().tp(2).build().resolve(SMALL));
    Hf2McorePlan split = new Hf2McorePlan(SMALL, LayoutOptions.builder().tp(2).mlaMmSplit(true).build()
        .resolve(SMALL));
    assertEquals(plain.rankFiles(), split.rankFiles());
    for (RankFile f : plain.rankFiles()) {
      assertEquals(described(plain.plan(f).contents), described(split.plan(f).contents), f.dirName());
    }
  }

  /** A rank file's contents spelled out: every key, shape, dtype and source slice. */
  private static String described(Map<String, List<AssembledTensor>> contents) {
    StringBuilder out = new StringBuilder();
    contents.forEach((chunk, ts) -> ts.forEach(t -> {
      out.append(chunk).append('/').append(t);
      t.bands().forEach(b -> out.append(" | ").append(b.slices()));
      out.append('\n');
    }));
    return out.toString();
  }

  @Test
  void layoutsTheTrainerCannotUseAreRefused() {
    Map<String, LayoutOptions.Builder> bad = new LinkedHashMap<>();
    bad.put("dualpipe", LayoutOptions.builder().pp(2).dualpipe(true).numLayers(8).noopLayers(List.of(6, 7)));
    bad.put("tpExtendEp", LayoutOptions.builder().tp(2).ep(2).groupedGemm(true).tpExtendEp(true));
    bad.put("numLayers", LayoutOptions.builder().numLayers(5).pp(1));
    bad.put("tp", LayoutOptions.builder().tp(16));
    bad.put("expertTensorParallel", LayoutOptions.builder().tp(2).expertTensorParallel(2).groupedGemm(true));
    for (Map.Entry<String, LayoutOptions.Builder> b : bad.entrySet()) {
      LayoutException e = assertThrows(LayoutException.class, () -> b.getValue().build().resolve(SMALL), b.getKey());
      assertTrue(e.getMessage().contains(b.getKey()), e.getMessage());
    }
  }

  /** Per-expert weights at expert-TP = tp split the expert width: it must divide, as every other split dimension. */
  @Test
  void anExpertWidthTheTpSizeDoesNotDivideIsRefused() throws IOException {
    ModelConfig odd = parse(flash(6, 8).replace("\"moe_intermediate_size\":2048", "\"moe_intermediate_size\":2047")
        .replace("\"n_shared_experts\":1", "\"n_shared_experts\":2")); // shared experts 4094 wide: divisible
    LayoutOptions wholeExperts = LayoutOptions.builder().tp(2).build().resolve(odd);
    assertEquals(2, wholeExperts.tp());
    LayoutException e = assertThrows(LayoutException.class,
        () -> LayoutOptions.builder().tp(2).expertTensorParallel(2).build().resolve(odd));
    assertTrue(e.getMessage().contains("moe_intermediate_size = 2047 is not divisible"), e.getMessage());
  }
}
