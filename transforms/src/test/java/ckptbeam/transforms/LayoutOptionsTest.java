package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/** The validation rules of docs/mapping.md §4.8 and the checks the reference lacks; messages name the flags. */
class LayoutOptionsTest {
  private static String refused(Consumer<LayoutOptions> set) {
    return refused(Configs.deepseekV3(), set);
  }

  private static String refused(ModelConfig cfg, Consumer<LayoutOptions> set) {
    LayoutOptions o = new LayoutOptions();
    set.accept(o);
    return assertThrows(IllegalArgumentException.class, () -> o.resolve(cfg)).getMessage();
  }

  /** The change is refused with a message that says {@code part}; the failure shows the whole message. */
  private static void assertRefused(Consumer<LayoutOptions> change, String part) {
    String message = refused(change);
    assertTrue(message.contains(part), message);
  }

  @Test
  void defaultsComeFromTheConfig() {
    LayoutOptions o = new LayoutOptions();
    o.noopLayers.add(3);
    LayoutOptions r = o.resolve(Configs.deepseekV3());
    assertEquals(62, r.numLayers);
    assertEquals(3, r.firstKDense);
    assertEquals(-1, o.numLayers); // resolve does not change its input
  }

  @Test
  void referenceRules() {
    assertTrue(refused(o -> {
      o.dualpipe = true;
      o.layersPerVirtualStage = 2;
    }).contains("dualpipev is not compatible with --num-layers-per-virtual-pipeline-stage"));
    assertRefused(o -> o.firstKDense = 4, "--first-k-dense-replace 4");
    assertTrue(refused(o -> {
      o.dualpipe = true;
      o.tp = 2;
      o.pp = 61;
    }).contains("needs --moe-tp-extend-ep"));
    assertRefused(o -> o.pp = 2, "--num-layers 61 is not divisible by --target-pipeline-parallel-size 2");
    assertTrue(refused(o -> {
      o.pp = 2;
      o.numLayerList = new int[] {30, 31};
      o.layersPerVirtualStage = 1;
    }).contains("--num-layer-list cannot be combined with --num-layers-per-virtual-pipeline-stage"));
    assertTrue(refused(o -> {
      o.pp = 2;
      o.numLayerList = new int[] {61};
    }).contains("has 1 entries but --target-pipeline-parallel-size is 2"));
    assertTrue(refused(o -> {
      o.pp = 2;
      o.numLayerList = new int[] {30, 30};
    }).contains("sums to 60 but --num-layers is 61"));
    assertTrue(refused(o -> {
      o.pp = 2;
      o.numLayers = 62;
      o.numLayerList = new int[] {31, 31};
      o.noopLayers.add(61);
    }).contains("--num-layer-list cannot be combined with --noop-layers"));
    assertRefused(o -> o.tpExtendEp = true, "--moe-tp-extend-ep needs --moe-grouped-gemm");
  }

  @Test
  void checksTheReferenceLacks() {
    // (L/pp) mod s != 0 silently dropped layers in the reference
    assertTrue(refused(Configs.withLayers(12, 3), o -> {
      o.pp = 2;
      o.layersPerVirtualStage = 4;
    }).contains("does not divide the 6 layers per pipeline stage"));
    assertRefused(o -> o.tp = 3, "num_attention_heads = 128 is not divisible by "
        + "--target-tensor-parallel-size = 3");
    assertRefused(o -> o.ep = 3, "n_routed_experts = 256 is not divisible by "
        + "--target-expert-parallel-size = 3");
    assertTrue(refused(o -> {
      o.numLayers = 64;
      o.noopLayers.add(64);
    }).contains("--noop-layers 64 is outside the layer slots 0..63"));
    assertRefused(o -> o.numLayers = 62, "needs 62 HF decoder layers");
    assertRefused(o -> o.mtpLayers = 2, "--mtp-num-layers 2 is more than the checkpoint's "
        + "num_nextn_predict_layers 1");
    assertTrue(refused(o -> {
      o.groupedGemm = true;
      o.tpExtendEp = true;
      o.tp = 8;
      o.ep = 64;
    }).contains("n_routed_experts = 256 is not divisible by --target-expert-parallel-size x "
        + "--target-tensor-parallel-size = 512"));
  }

  @Test
  void numLayerListWorksForAnyLayerCount() {
    LayoutOptions o = new LayoutOptions();
    o.pp = 2;
    o.numLayerList = new int[] {5, 3};
    assertEquals(8, o.resolve(Configs.withLayers(8, 3)).numLayers);
  }
}
