package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.function.Consumer;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * The inverse plans without torch or files: mcore2hf rebuilds every HF tensor of the model, each exactly tiled by
 * slices of rank-file tensors the forward plan writes; mcore2mcore reads only tensors the source layout has, in the
 * shapes it writes them; the LoRA export names its modules. Over the layouts the reference writes.
 */
class InversePlansTest {
  /** DeepSeek-V3's matrix sizes with 5 layers (2 dense), 16 experts and one MTP layer: small plans, real shapes. */
  private static final ModelConfig CFG = Configs.parse(Configs.DEEPSEEK_V3
      .replace("\"num_hidden_layers\":61", "\"num_hidden_layers\":5")
      .replace("\"first_k_dense_replace\":3", "\"first_k_dense_replace\":2")
      .replace("\"n_routed_experts\":256", "\"n_routed_experts\":16"));

  private static LayoutOptions layout(String name) {
    LayoutOptions.Builder o = LayoutOptions.builder().mtpLayers(1);
    Map<String, Consumer<LayoutOptions.Builder>> layouts = Map.of(
        "tp2 pp2 ep2 grouped", l -> { l.tp(2); l.pp(2); l.ep(2); l.groupedGemm(true); l.numLayers(6);
          l.noopLayers(List.of(5)); },
        "tp2 mla-mm-split per-expert", l -> { l.tp(2); l.mlaMmSplit(true); },
        "tp2 ep4 tp-extend-ep", l -> { l.tp(2); l.ep(4); l.groupedGemm(true); l.tpExtendEp(true); },
        "pp2 vpp noop", l -> { l.pp(2); l.numLayers(8); l.noopLayers(List.of(3, 7, 6));
          l.layersPerVirtualStage(2); },
        "pp3 num-layer-list", l -> { l.pp(3); l.numLayerList(1, 2, 2); },
        "pp2 dualpipev", l -> { l.pp(2); l.dualpipe(true); l.numLayers(8); l.noopLayers(List.of(5, 6, 7));
        },
        "2025.03 key names", l -> { l.keyNames(McoreKeyNames.Scheme.V2025_03); l.ep(2); });
    layouts.get(name).accept(o);
    return o.build();
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"tp2 pp2 ep2 grouped", "tp2 mla-mm-split per-expert", "tp2 ep4 tp-extend-ep",
      "pp2 vpp noop", "pp3 num-layer-list", "pp2 dualpipev", "2025.03 key names"})
  void mcore2hfRebuildsEveryHfTensorFromTensorsTheForwardPlanWrites(String name) {
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(CFG, layout(name));
    Mcore2HfPlan back = new Mcore2HfPlan(forward, "iter_0000001");
    Map<String, Shape> written = back.sourceShapes();
    Map<String, Shape> rebuilt = new TreeMap<>();
    for (Map.Entry<String, List<AssembledTensor>> file : back.files().entrySet()) {
      assertEquals(file.getValue(), back.tensorsOf(file.getKey()));
      for (AssembledTensor t : file.getValue()) {
        assertTiled(t, written);
        assertEquals(null, rebuilt.put(t.key(), t.shape()), t.key() + " is in one HF file only");
      }
    }
    Map<String, Shape> inventory = new TreeMap<>();
    HfInventory.of(forward.config()).forEach(e -> inventory.put(e.name(), e.shape()));
    assertEquals(inventory, rebuilt, "every tensor of the HF model, in its shape");
  }

  /** The bands of {@code t} stack to its shape, each slice within a tensor the rank files hold. */
  private static void assertTiled(AssembledTensor t, Map<String, Shape> written) {
    long rows = 0;
    // a 1-D tensor is a column: one element per row
    long cols = t.shape().rank() == 1 ? 1 : t.shape().dim(1);
    long expectedRows = t.shape().dim(0);
    for (Band b : t.bands()) {
      assertEquals(cols, b.width(), t.key() + ": a band as wide as the tensor");
      for (SourceSlice s : b.slices()) {
        Shape source = written.get(s.source());
        assertTrue(source != null, t.key() + " reads " + s.source() + ", which no rank file holds");
        assertTrue(s.fitsIn(source), t.key() + ": " + s + " outside " + s.source() + " " + source);
      }
      rows += b.height();
    }
    assertEquals(expectedRows, rows, t.key() + ": bands stack to the tensor's rows");
  }

  @ParameterizedTest(name = "{0} -> tp1 pp2 ep4 grouped, num-layer-list 3,2")
  @ValueSource(strings = {"tp2 pp2 ep2 grouped", "tp2 mla-mm-split per-expert", "pp2 vpp noop", "2025.03 key names"})
  void mcore2mcoreReadsOnlyWhatTheSourceLayoutWrites(String name) {
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(CFG, layout(name));
    Mcore2HfPlan source = new Mcore2HfPlan(forward, "iter_0000001");
    LayoutOptions to = LayoutOptions.builder().pp(2).numLayerList(3, 2).ep(4).groupedGemm(true).mtpLayers(1).build();
    Hf2McorePlan target = new Hf2McorePlan(forward.config(), to.resolve(forward.config()));
    Mcore2McorePlan both = new Mcore2McorePlan(source, target);
    assertEquals(target.targets(), both.targets(), "the target layout's rank files");
    Map<String, Shape> written = source.sourceShapes();
    TreeSet<String> read = new TreeSet<>();
    for (String file : both.targets()) {
      for (Map.Entry<String, Shape> need : both.sourcesOf(file).entrySet()) {
        assertEquals(written.get(need.getKey()), need.getValue(), file + " reads " + need.getKey());
        read.add(need.getKey());
      }
    }
    assertFalse(read.isEmpty());
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"tp2 mla-mm-split per-expert", "pp2 vpp noop"})
  void theLoraExportNamesItsModulesAndRank(String name) {
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(CFG, layout(name));
    LoraExportPlan export = new LoraExportPlan(forward, "iter_0000001", 8,
        List.of("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2"));
    ObjectNode config = export.adapterConfig(16);
    assertEquals(8, config.get("r").asInt());
    assertEquals(16.0, config.get("lora_alpha").asDouble());
    assertFalse(export.targets().isEmpty());
    for (String file : export.targets()) {
      for (AssembledTensor t : export.files().get(file)) {
        assertTrue(t.key().startsWith(LoraExportPlan.PREFIX) && (t.key().contains(".lora_A.")
            || t.key().contains(".lora_B.")), t.key());
      }
    }
    assertTrue(export.hfTargetModules().contains("o_proj"), export.hfTargetModules().toString());
  }
}
