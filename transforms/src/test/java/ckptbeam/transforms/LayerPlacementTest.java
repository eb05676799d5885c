package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.stream.Collectors;
import java.util.stream.IntStream;
import org.junit.jupiter.api.Test;

/** The worked examples of docs/mapping.md §4.7, obtained there by running the reference's placement routines. */
class LayerPlacementTest {
  private static LayoutOptions.Builder opts(int numLayers, int pp, int... noop) {
    return LayoutOptions.builder().numLayers(numLayers).pp(pp)
        .noopLayers(IntStream.of(noop).boxed().collect(Collectors.toList()));
  }

  private static LayerPlacement place(ModelConfig cfg, LayoutOptions.Builder o) {
    return LayerPlacement.compute(cfg, o.build().resolve(cfg));
  }

  /** "hf->local" pairs of a chunk. */
  private static String chunk(LayerPlacement lp, int p, int v) {
    return lp.chunk(p, v).layers.toString();
  }

  @Test
  void example1EvenSplitWithANoopLayer() {
    LayerPlacement lp = place(Configs.withLayers(61, 3), opts(8, 2, 7));
    assertEquals("[0->0, 1->1, 2->2, 3->3]", chunk(lp, 0, 0));
    assertEquals("[4->0, 5->1, 6->2]", chunk(lp, 1, 0));
  }

  @Test
  void example2NoopSlotsAtAStageBoundary() {
    LayerPlacement lp = place(Configs.withLayers(61, 3), opts(8, 2, 3, 4));
    assertEquals("[0->0, 1->1, 2->2]", chunk(lp, 0, 0));
    assertEquals("[3->1, 4->2, 5->3]", chunk(lp, 1, 0));
  }

  @Test
  void example3VirtualPipeline() {
    LayoutOptions.Builder o = opts(8, 2);
    o.layersPerVirtualStage(2);
    LayerPlacement lp = place(Configs.withLayers(61, 3), o);
    assertEquals(2, lp.virtualChunks());
    assertEquals("[0->0, 1->1]", chunk(lp, 0, 0));
    assertEquals("[4->0, 5->1]", chunk(lp, 0, 1));
    assertEquals("[2->0, 3->1]", chunk(lp, 1, 0));
    assertEquals("[6->0, 7->1]", chunk(lp, 1, 1));

    o.noopLayers(List.of(7));
    lp = place(Configs.withLayers(61, 3), o);
    assertEquals("[6->0]", chunk(lp, 1, 1));

    o.noopLayers(List.of(4, 5));
    lp = place(Configs.withLayers(61, 3), o);
    assertEquals("[]", chunk(lp, 0, 1));
    assertEquals("[4->0, 5->1]", chunk(lp, 1, 1));
  }

  @Test
  void example4FirstKDenseQuirkAndMtp() {
    LayoutOptions.Builder o = opts(8, 2);
    o.firstKDense(1);
    o.mtpLayers(1);
    LayerPlacement lp = place(Configs.withLayers(61, 3), o);
    assertEquals("[0->0, 3->1, 4->2, 5->3]", chunk(lp, 0, 0));
    assertEquals("[6->0, 7->1, 8->2, 9->3]", chunk(lp, 1, 0));
    assertEquals(List.of(61), lp.chunk(1, 0).mtp);
    assertTrue(lp.chunk(1, 0).finalNorm);
    assertTrue(lp.chunk(0, 0).embedding);
  }

  @Test
  void example4GeneralisesTheLiteral3ToTheConfigValue() {
    LayoutOptions.Builder o = opts(6, 1);
    o.firstKDense(2);
    LayerPlacement lp = place(Configs.withLayers(20, 5), o);
    assertEquals("[0->0, 1->1, 5->2, 6->3, 7->4, 8->5]", chunk(lp, 0, 0));
  }

  @Test
  void example5TheShippedShellDefaults() {
    LayoutOptions.Builder o = opts(64, 8, 47, 62, 63);
    o.layersPerVirtualStage(2);
    o.mtpLayers(1);
    LayerPlacement lp = place(Configs.deepseekV3(), o);
    assertEquals(4, lp.virtualChunks());
    for (int p = 0; p < 8; p++) {
      assertEquals("[" + (2 * p) + "->0, " + (2 * p + 1) + "->1]", chunk(lp, p, 0));
      assertEquals("[" + (16 + 2 * p) + "->0, " + (17 + 2 * p) + "->1]", chunk(lp, p, 1));
    }
    for (int p = 0; p < 7; p++) {
      assertEquals("[" + (32 + 2 * p) + "->0, " + (33 + 2 * p) + "->1]", chunk(lp, p, 2));
      assertEquals("[" + (47 + 2 * p) + "->0, " + (48 + 2 * p) + "->1]", chunk(lp, p, 3));
    }
    assertEquals("[46->0]", chunk(lp, 7, 2));
    assertEquals("[]", chunk(lp, 7, 3));
    assertEquals(List.of(61), lp.chunk(7, 3).mtp);
    assertTrue(lp.chunk(7, 3).finalNorm);
  }

  @Test
  void example6Dualpipe() {
    LayoutOptions.Builder o = opts(8, 2);
    o.dualpipe(true);
    LayerPlacement lp = place(Configs.withLayers(61, 3), o);
    assertEquals("[0->0, 1->1]", chunk(lp, 0, 0));
    assertEquals("[6->0, 7->1]", chunk(lp, 0, 1));
    assertEquals("[2->0, 3->1]", chunk(lp, 1, 0));
    assertEquals("[4->0, 5->1]", chunk(lp, 1, 1));
    assertTrue(lp.chunk(0, 1).finalNorm);
    assertTrue(lp.finalFirst());

    o.pp(4);
    lp = place(Configs.withLayers(61, 3), o);
    for (int p = 0; p < 4; p++) {
      assertEquals("[" + p + "->0]", chunk(lp, p, 0));
      assertEquals("[" + (7 - p) + "->0]", chunk(lp, p, 1));
    }

    o.pp(2);
    o.noopLayers(List.of(5));
    lp = place(Configs.withLayers(61, 3), o);
    assertEquals("[4->0]", chunk(lp, 1, 1));
    assertEquals("[5->0, 6->1]", chunk(lp, 0, 1));
  }

  @Test
  void numLayerListTakesConsecutiveLayers() {
    LayoutOptions.Builder o = opts(61, 4);
    o.numLayerList(16, 15, 15, 15);
    LayerPlacement lp = place(Configs.deepseekV3(), o);
    assertEquals(16, lp.chunk(0, 0).layers.size());
    assertEquals(16, lp.chunk(1, 0).layers.get(0).hfIndex());
    assertEquals(0, lp.chunk(1, 0).layers.get(0).local());
    assertEquals(60, lp.chunk(3, 0).layers.get(14).hfIndex());
  }

  @Test
  void everyRealLayerIsPlacedExactlyOnceInEveryMode() {
    ModelConfig cfg = Configs.withLayers(24, 3);
    List<LayoutOptions.Builder> modes = new ArrayList<>();
    modes.add(opts(24, 4));
    modes.add(opts(26, 2, 0, 25));
    LayoutOptions.Builder vpp = opts(24, 2);
    vpp.layersPerVirtualStage(3);
    modes.add(vpp);
    LayoutOptions.Builder dual = opts(28, 2, 1, 9, 17, 27);
    dual.dualpipe(true);
    modes.add(dual);
    for (LayoutOptions.Builder o : modes) {
      LayerPlacement lp = place(cfg, o);
      TreeSet<Integer> seen = new TreeSet<>();
      for (LayerPlacement.Chunk c : lp.chunks()) {
        TreeSet<Integer> locals = new TreeSet<>();
        for (LayerPlacement.Placed l : c.layers) {
          assertTrue(seen.add(l.hfIndex()), "HF layer " + l.hfIndex() + " placed twice");
          assertTrue(locals.add(l.local()), "local slot " + l.local() + " used twice");
        }
      }
      assertEquals(24, seen.size());
      assertEquals(23, (int) seen.last());
    }
  }
}
