package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.function.Consumer;
import org.junit.jupiter.api.Test;

/**
 * The validation rules of docs/mapping.md §4.8 and the checks the reference lacks; messages name the settings (the
 * command line names them by flag: FlagMessagesTest).
 */
class LayoutOptionsTest {
  private static String refused(Consumer<LayoutOptions.Builder> set) {
    return refused(Configs.deepseekV3(), set);
  }

  private static String refused(ModelConfig cfg, Consumer<LayoutOptions.Builder> set) {
    LayoutOptions.Builder o = LayoutOptions.builder();
    set.accept(o);
    return assertThrows(LayoutException.class, () -> o.build().resolve(cfg)).getMessage();
  }

  /** The change is refused with a message that says {@code part}; the failure shows the whole message. */
  private static void assertRefused(Consumer<LayoutOptions.Builder> change, String part) {
    String message = refused(change);
    assertTrue(message.contains(part), message);
  }

  @Test
  void defaultsComeFromTheConfig() {
    LayoutOptions o = LayoutOptions.builder().noopLayers(List.of(3)).build();
    LayoutOptions r = o.resolve(Configs.deepseekV3());
    assertEquals(62, r.numLayers());
    assertEquals(3, r.firstKDense());
    assertEquals(-1, o.numLayers()); // resolve does not change its input
  }

  @Test
  void referenceRules() {
    assertTrue(refused(o -> {
      o.dualpipe(true);
      o.layersPerVirtualStage(2);
    }).contains("dualpipe is not compatible with layersPerVirtualStage"));
    assertRefused(o -> o.firstKDense(4), "firstKDense 4");
    assertTrue(refused(o -> {
      o.dualpipe(true);
      o.tp(2);
      o.pp(61);
    }).contains("needs tpExtendEp"));
    assertRefused(o -> o.pp(2), "numLayers 61 is not divisible by pp 2");
    assertTrue(refused(o -> {
      o.pp(2);
      o.numLayerList(new int[] {30, 31});
      o.layersPerVirtualStage(1);
    }).contains("numLayerList cannot be combined with layersPerVirtualStage"));
    assertTrue(refused(o -> {
      o.pp(2);
      o.numLayerList(new int[] {61});
    }).contains("has 1 entries but pp is 2"));
    assertTrue(refused(o -> {
      o.pp(2);
      o.numLayerList(new int[] {30, 30});
    }).contains("sums to 60 but numLayers is 61"));
    assertTrue(refused(o -> {
      o.pp(2);
      o.numLayers(62);
      o.numLayerList(new int[] {31, 31});
      o.noopLayers(List.of(61));
    }).contains("numLayerList cannot be combined with noopLayers"));
    assertRefused(o -> o.tpExtendEp(true), "tpExtendEp needs groupedGemm");
  }

  @Test
  void checksTheReferenceLacks() {
    // (L/pp) mod s != 0 silently dropped layers in the reference
    assertTrue(refused(Configs.withLayers(12, 3), o -> {
      o.pp(2);
      o.layersPerVirtualStage(4);
    }).contains("does not divide the 6 layers per pipeline stage"));
    assertRefused(o -> o.tp(3), "num_attention_heads = 128 is not divisible by "
        + "tp = 3");
    assertRefused(o -> o.ep(3), "n_routed_experts = 256 is not divisible by "
        + "ep = 3");
    assertTrue(refused(o -> {
      o.numLayers(64);
      o.noopLayers(List.of(64));
    }).contains("noopLayers 64 is outside the layer slots 0..63"));
    assertRefused(o -> o.numLayers(62), "needs 62 HF decoder layers");
    assertRefused(o -> o.mtpLayers(2), "mtpLayers 2 is more than the checkpoint's "
        + "num_nextn_predict_layers 1");
    assertTrue(refused(o -> {
      o.groupedGemm(true);
      o.tpExtendEp(true);
      o.tp(8);
      o.ep(64);
    }).contains("n_routed_experts = 256 is not divisible by ep x "
        + "tp = 512"));
  }

  @Test
  void numLayerListWorksForAnyLayerCount() {
    LayoutOptions o = LayoutOptions.builder().pp(2).numLayerList(5, 3).build();
    assertEquals(8, o.resolve(Configs.withLayers(8, 3)).numLayers());
  }

  @Test
  void settingsAreNamedByWhoeverReports() {
    LayoutException e = assertThrows(LayoutException.class, () -> LayoutOptions.builder().pp(2).build()
        .resolve(Configs.deepseekV3()));
    assertEquals("numLayers 61 is not divisible by pp 2", e.getMessage());
    LayoutException onSource = e.on(LayoutException.Side.SOURCE);
    assertEquals("source numLayers 61 is not divisible by source pp 2", onSource.getMessage());
    assertEquals("<NUM_LAYERS/SOURCE> 61 is not divisible by <PP/SOURCE> 2",
        onSource.message((s, side) -> "<" + s + "/" + side + ">"));
  }

  @Test
  void immutable() {
    LayoutOptions o = LayoutOptions.builder().noopLayers(List.of(1)).numLayerList(2, 3).build();
    assertThrows(UnsupportedOperationException.class, () -> o.noopLayers().add(2));
    o.numLayerList()[0] = 9;
    assertEquals(2, o.numLayerList()[0]);
    LayoutOptions.Builder b = o.toBuilder().tp(2);
    assertEquals(1, o.tp());
    assertEquals(2, b.build().tp());
    assertEquals(o, o.toBuilder().build());
  }
}
