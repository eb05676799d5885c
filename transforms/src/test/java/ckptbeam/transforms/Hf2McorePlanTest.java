package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

/** The planner on the real DeepSeek-V3 dimensions (docs/mapping.md §3). */
class Hf2McorePlanTest {
  private static Hf2McorePlan plan(LayoutOptions o) {
    ModelConfig cfg = Configs.deepseekV3();
    return new Hf2McorePlan(cfg, o.resolve(cfg));
  }

  private static AssembledTensor find(List<AssembledTensor> ts, String key) {
    for (AssembledTensor t : ts) {
      if (t.key().equals(key)) {
        return t;
      }
    }
    throw new AssertionError("no " + key);
  }

  @Test
  void defaultLayoutHoldsEveryMainTensorInTheReferenceOrder() {
    Hf2McorePlan p = plan(LayoutOptions.defaults());
    List<RankFile> files = p.rankFiles();
    assertEquals(1, files.size());
    assertEquals("iter_0000001/mp_rank_00/model_optim_rng.pt", files.get(0).relativePath(1));
    List<AssembledTensor> model = p.contents(files.get(0)).get("model");
    List<String> keys = new ArrayList<>();
    model.forEach(t -> keys.add(t.key()));
    assertEquals("embedding.word_embeddings.weight", keys.get(0));
    assertEquals(List.of("decoder.layers.0.input_layernorm.weight", "decoder.layers.0.pre_mlp_layernorm.weight",
        "decoder.layers.0.self_attention.linear_qkv.weight", "decoder.layers.0.self_attention.linear_proj.weight",
        "decoder.layers.0.self_attention.q_layernorm.weight", "decoder.layers.0.self_attention.kv_layernorm.weight",
        "decoder.layers.0.self_attention.linear_q_up_proj.weight",
        "decoder.layers.0.self_attention.linear_kv_up_proj.weight", "decoder.layers.0.mlp.linear_fc1.weight",
        "decoder.layers.0.mlp.linear_fc2.weight"), keys.subList(1, 11));
    assertEquals(List.of("decoder.final_layernorm.weight", "output_layer.weight"),
        keys.subList(keys.size() - 2, keys.size()));
    // 3 dense layers x 10, 58 MoE layers x (8 + 2 + 256 x 2), embedding, final norm, output layer
    assertEquals(3 * 10 + 58 * (8 + 2 + 2 + 512) + 3, keys.size());
    assertEquals(new HashSet<>(keys).size(), keys.size());
    // every HF tensor but the MTP layer is read
    Map<String, Shape> sources = p.sourcesOf(files.get(0));
    assertEquals(Shape.of(2048, 7168), sources.get("model.layers.3.mlp.experts.255.up_proj.weight"));
    assertEquals(Shape.of(256), sources.get("model.layers.60.mlp.gate.e_score_correction_bias"));
    assertFalse(sources.keySet().stream().anyMatch(n -> n.startsWith("model.layers.61.")));
  }

  @Test
  void linearQkvStacksQaOnKva() {
    AssembledTensor qkv = find(plan(LayoutOptions.defaults()).contents(plan(LayoutOptions.defaults()).rankFiles().get(0))
        .get("model"), "decoder.layers.5.self_attention.linear_qkv.weight");
    assertEquals(Shape.of(2112, 7168), qkv.shape());
    assertEquals("model.layers.5.self_attn.q_a_proj.weight", qkv.bands().get(0).slices().get(0).source());
    assertEquals(1536, qkv.bands().get(0).height());
    assertEquals(576, qkv.bands().get(1).height());
  }

  @Test
  void groupedGemmTp2Ep32() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.tp(2);
    o.ep(32);
    o.groupedGemm(true);
    Hf2McorePlan p = plan(o.build());
    assertEquals(64, p.rankFiles().size());
    RankFile f = new RankFile(1, 0, 3, 1, 32);
    assertEquals("mp_rank_01_003", f.dirName());
    List<AssembledTensor> model = p.contents(f).get("model");
    AssembledTensor w1 = find(model, "decoder.layers.3.mlp.experts.weight1");
    AssembledTensor w2 = find(model, "decoder.layers.3.mlp.experts.weight2");
    assertEquals(Shape.of(7168, 8 * 2048), w1.shape()); // docs/mapping.md §3.7.2 example
    assertEquals(Shape.of(8 * 1024, 7168), w2.shape());
    Band first = w1.bands().get(0);
    SourceSlice gate = first.slices().get(0);
    assertEquals("model.layers.3.mlp.experts.24.gate_proj.weight", gate.source()); // r·E/ep + l = 3·8 + 0
    assertTrue(gate.isTransposed());
    assertEquals(1024, gate.rowStart()); // tp rank 1's chunk of the gate rows
    assertEquals(1024, gate.rowCount());
    assertEquals("model.layers.3.mlp.experts.24.up_proj.weight", first.slices().get(1).source());
    assertEquals(7168, first.height());
    SourceSlice down = w2.bands().get(7).slices().get(0);
    assertEquals("model.layers.3.mlp.experts.31.down_proj.weight", down.source());
    assertEquals(1024, down.colStart());
    // replicated over EP, split over TP
    assertEquals(Shape.of(7168, 8192), find(model, "decoder.layers.3.self_attention.linear_proj.weight").shape());
    assertEquals(Shape.of(2048, 7168), find(model, "decoder.layers.3.mlp.shared_experts.linear_fc1.weight").shape());
    assertEquals(Shape.of(64640, 7168), find(model, "embedding.word_embeddings.weight").shape());
  }

  @Test
  void tpExtendEpGivesWholeExpertsPerTpRank() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.tp(2);
    o.ep(4);
    o.groupedGemm(true);
    o.tpExtendEp(true);
    Hf2McorePlan p = plan(o.build());
    List<AssembledTensor> model = p.contents(new RankFile(1, 0, 2, 1, 4)).get("model");
    AssembledTensor w1 = find(model, "decoder.layers.3.mlp.experts.weight1");
    assertEquals(Shape.of(7168, 32 * 4096), w1.shape());
    SourceSlice gate = w1.bands().get(0).slices().get(0);
    assertEquals("model.layers.3.mlp.experts.160.gate_proj.weight", gate.source()); // (r·tp + t)·E/(ep·tp) = 5·32
    assertEquals(0, gate.rowStart());
    assertEquals(2048, gate.rowCount());
  }

  @Test
  void mlaMmSplitTakesThePerHeadRowsOfThisRank() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.tp(2);
    o.mlaMmSplit(true);
    List<AssembledTensor> model = plan(o.build()).contents(new RankFile(1, 0, 0, 1, 1)).get("model");
    AssembledTensor rope = find(model, "decoder.layers.0.self_attention.linear_qk_rope.weight");
    assertEquals(Shape.of(64 * 64, 1536), rope.shape());
    assertEquals(64, rope.bands().size());
    assertEquals(64 * 192 + 128, rope.bands().get(0).slices().get(0).rowStart()); // head 64, rows after nope
    AssembledTensor v = find(model, "decoder.layers.0.self_attention.linear_v.weight");
    assertEquals(Shape.of(64 * 128, 512), v.shape());
    Set<String> keys = new HashSet<>();
    model.forEach(t -> keys.add(t.key()));
    assertFalse(keys.contains("decoder.layers.0.self_attention.linear_q_up_proj.weight"), keys::toString);
  }

  @Test
  void mtpGoesToTheLastStageWithItsEmbeddingCopyOnlyWhenPipelined() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.mtpLayers(1);
    o.pp(61);
    Hf2McorePlan p = plan(o.build());
    List<AssembledTensor> last = p.contents(new RankFile(0, 60, 0, 61, 1)).get("model");
    assertEquals("mtp.layers.0.enorm.weight", last.get(0).key());
    assertEquals("embedding.word_embeddings.weight", last.get(3).key());
    assertEquals("model.layers.61.embed_tokens.weight", last.get(3).bands().get(0).slices().get(0).source());
    assertEquals("final_layernorm.weight", last.get(last.size() - 2).key());
    assertEquals("mtp.final_layernorms.0.weight", find(last, "mtp.final_layernorms.0.weight").key());

    o.pp(1);
    List<AssembledTensor> only = plan(o.build()).contents(new RankFile(0, 0, 0, 1, 1)).get("model");
    assertEquals(1, only.stream().filter(t -> t.key().equals("embedding.word_embeddings.weight")).count());
  }

  @Test
  void oldKeyNames() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.mtpLayers(1);
    o.keyNames(McoreKeyNames.Scheme.V2025_03);
    List<AssembledTensor> model = plan(o.build()).contents(new RankFile(0, 0, 0, 1, 1)).get("model");
    Set<String> keys = new HashSet<>();
    model.forEach(t -> keys.add(t.key()));
    assertTrue(keys.contains("decoder.layers.0.self_attention.linear_qb.weight"), keys::toString);
    assertTrue(keys.contains("decoder.layers.0.self_attention.linear_kvb.weight"), keys::toString);
    assertTrue(keys.contains("decoder.layers.0.self_attention.k_layernorm.weight"), keys::toString);
    assertTrue(keys.contains("mtp_layers.0.transformer_layer.mlp.router.weight"), keys::toString);
    assertTrue(keys.contains("mtp_layers.0.final_layernorm.weight"), keys::toString);
  }

  @Test
  void virtualPipelineFilesHoldOneMappingPerChunk() {
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.pp(8);
    o.numLayers(64);
    o.noopLayers(List.of(47, 62, 63));
    o.layersPerVirtualStage(2);
    o.mtpLayers(1);
    Map<String, List<AssembledTensor>> last = plan(o.build()).contents(new RankFile(0, 7, 0, 8, 1));
    assertEquals(List.of("model0", "model1", "model2", "model3"), new ArrayList<>(last.keySet()));
    List<AssembledTensor> m3 = last.get("model3");
    assertEquals("mtp.layers.0.enorm.weight", m3.get(0).key());
    assertEquals("output_layer.weight", m3.get(m3.size() - 1).key());
    assertFalse(m3.stream().anyMatch(t -> t.key().startsWith("decoder.layers.")));
  }
}
