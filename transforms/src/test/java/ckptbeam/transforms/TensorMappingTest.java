package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ckptbeam.io.compute.Nf4;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.transforms.TensorMapping.Row;
import ckptbeam.transforms.TensorMapping.Split;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/** The mapping table (docs/mapping.md §3) and what derives from it. */
class TensorMappingTest {
  /** DeepSeek-V3.2-shaped, small: every row of the table applies to some layer. */
  private static final String TINY_V32 = "{\"model_type\":\"deepseek_v32\",\"index_n_heads\":2,\"index_head_dim\":4,"
      + "\"vocab_size\":64,\"hidden_size\":16,\"intermediate_size\":24,\"moe_intermediate_size\":8,"
      + "\"num_hidden_layers\":3,\"first_k_dense_replace\":1,\"n_routed_experts\":4,\"n_shared_experts\":1,"
      + "\"num_attention_heads\":4,\"q_lora_rank\":12,\"kv_lora_rank\":8,\"qk_nope_head_dim\":4,"
      + "\"qk_rope_head_dim\":2,\"v_head_dim\":4,\"num_nextn_predict_layers\":1}";

  @Test
  void oProjAtTp4IsRowParallelRankTHoldsTheColumnsOfItsOwnHeads() {
    Row proj = TensorMapping.row("proj");
    assertEquals("self_attn.o_proj.weight", proj.source().name());
    assertEquals("self_attention.linear_proj.weight", proj.mcore());
    assertEquals(Split.COLUMNS, proj.split());

    ModelConfig cfg = Configs.deepseekV3();
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.tp(4);
    Hf2McorePlan plan = new Hf2McorePlan(cfg, o.build().resolve(cfg));
    for (RankFile f : plan.rankFiles()) {
      AssembledTensor t = plan.contents(f).get("model").stream()
          .filter(x -> x.key().equals("decoder.layers.0.self_attention.linear_proj.weight")).findFirst().orElseThrow();
      // o_proj is [H, nH·d_v] = [7168, 16384]; rank t keeps the 4096 columns that multiply its 32 heads' values
      assertEquals(Shape.of(7168, 4096), t.shape());
      SourceSlice s = t.bands().get(0).slices().get(0);
      assertEquals(List.of("model.layers.0.self_attn.o_proj.weight", 0L, 7168L, f.tpRank * 4096L, 4096L),
          List.of(s.source(), s.rowStart(), s.rowCount(), s.colStart(), s.colCount()));
    }
  }

  @Test
  void theForwardPlanReadsEveryTensorOfTheInventoryButTheOnesTheTableDeclaresUnconverted() {
    ModelConfig cfg = Configs.parse(TINY_V32);
    for (boolean grouped : new boolean[] {false, true}) {
      LayoutOptions.Builder o = LayoutOptions.builder();
      o.mtpLayers(1);
      o.groupedGemm(grouped);
      Hf2McorePlan plan = new Hf2McorePlan(cfg, o.build().resolve(cfg));
      TreeSet<String> unread = new TreeSet<>();
      HfInventory.of(cfg).forEach(e -> unread.add(e.name()));
      unread.removeAll(plan.sourcesOf(plan.rankFiles().get(0)).keySet());
      TensorMapping.MTP_UNCONVERTED.forEach(s -> unread.remove(HfNames.layer(cfg.hiddenLayers, s.name())));
      // at pp 1 the MTP layer shares the first stage's embedding (docs/mapping.md §3.8)
      assertEquals(List.of("model.layers.3.embed_tokens.weight"), List.copyOf(unread), "grouped " + grouped);
    }
  }

  @Test
  void theShapesTheTableGivesAreTheInventorysShapes() {
    ModelConfig cfg = Configs.parse(TINY_V32);
    LayoutOptions.Builder o = LayoutOptions.builder();
    o.mtpLayers(1);
    Hf2McorePlan plan = new Hf2McorePlan(cfg, o.build().resolve(cfg));
    Map<String, Shape> read = plan.sourcesOf(plan.rankFiles().get(0));
    List<String> wrong = new ArrayList<>();
    for (HfInventory.Entry e : HfInventory.of(cfg)) {
      if (read.containsKey(e.name()) && !read.get(e.name()).equals(e.shape())) {
        wrong.add(e.name() + " " + e.shape() + " vs " + read.get(e.name()));
      }
    }
    assertEquals(List.of(), wrong);
  }

  @Test
  void loraExportModulesDeriveFromTheRowsMarkedLora() {
    Map<String, List<String>> expected = Map.of("linear_qkv", List.of("q_a_proj", "kv_a_proj_with_mqa"),
        "linear_proj", List.of("o_proj"), "linear_q_up_proj", List.of("q_b_proj"),
        "linear_kv_up_proj", List.of("kv_b_proj"), "linear_fc1", List.of("gate_proj", "up_proj"),
        "linear_fc2", List.of("down_proj"), "eh_proj", List.of("eh_proj"));
    assertEquals(new TreeMap<>(expected), new TreeMap<>(LoraExportPlan.HF_MODULES));
  }

  @Test
  void nf4QuantisesTheLinearWeightsInBothKeySchemesAndNothingElse() {
    LayoutOptions o = LayoutOptions.builder().nf4(Nf4.Format.NPU).build();
    List<String> quantised = List.of("output_layer.weight", "mtp.layers.0.eh_proj.weight",
        "mtp_layers.0.eh_proj.weight", "decoder.layers.1.self_attention.linear_qkv.weight",
        "decoder.layers.1.self_attention.linear_proj.weight", "decoder.layers.1.self_attention.linear_q_up_proj.weight",
        "decoder.layers.1.self_attention.linear_qb.weight", "decoder.layers.1.self_attention.linear_kvb.weight",
        "decoder.layers.1.self_attention.linear_qk_rope.weight", "decoder.layers.1.self_attention.linear_v.weight",
        "decoder.layers.0.mlp.linear_fc1.weight", "decoder.layers.1.mlp.shared_experts.linear_fc2.weight",
        "decoder.layers.1.mlp.experts.local_experts.7.linear_fc1.weight", "decoder.layers.1.mlp.experts.weight1",
        "decoder.layers.1.mlp.experts.weight2");
    List<String> kept = List.of("embedding.word_embeddings.weight", "mtp_layers.0.embedding.word_embeddings.weight",
        "decoder.final_layernorm.weight", "final_layernorm.weight", "mtp.final_layernorms.0.weight",
        "mtp.layers.0.enorm.weight", "decoder.layers.1.input_layernorm.weight",
        "decoder.layers.1.self_attention.k_layernorm.weight", "decoder.layers.1.self_attention.q_layernorm.weight",
        "decoder.layers.1.mlp.router.weight", "decoder.layers.1.mlp.router.expert_bias",
        "decoder.layers.1.self_attention.dsa_indexer.wq_b.weight",
        "decoder.layers.1.self_attention.dsa_indexer.k_norm.bias");
    assertEquals(List.of(), quantised.stream().filter(k -> !o.quantises(k)).collect(Collectors.toList()),
        "should be quantised");
    assertEquals(List.of(), kept.stream().filter(o::quantises).collect(Collectors.toList()), "should be kept");
  }

  @Test
  void the2025KeyNamesAreADiffOfTheTable() {
    McoreKeyNames current = new McoreKeyNames(McoreKeyNames.Scheme.CURRENT);
    McoreKeyNames old = new McoreKeyNames(McoreKeyNames.Scheme.V2025_03);
    List<String> changed = new ArrayList<>();
    for (Row r : TensorMapping.ROWS) {
      assertEquals(r.mcore(), current.template(r.logical()));
      if (!old.template(r.logical()).equals(r.mcore())) {
        changed.add(r.logical());
      }
    }
    assertEquals(List.of("mtp_enorm", "mtp_hnorm", "mtp_eh_proj", "mtp_embedding", "mtp_final_norm", "kv_norm",
        "q_up", "kv_up"), changed);
  }

  @Test
  void groupedExpertKeysAreTheGroupedRows() {
    assertEquals(List.of(true, true, false, false), List.of(
        TensorMapping.isGroupedExperts("decoder.layers.3.mlp.experts.weight1"),
        TensorMapping.isGroupedExperts("mtp.layers.0.transformer_layer.mlp.experts.weight2"),
        TensorMapping.isGroupedExperts("decoder.layers.3.mlp.experts.local_experts.0.linear_fc1.weight"),
        TensorMapping.isGroupedExperts("decoder.layers.3.mlp.linear_fc1.weight")));
  }
}
