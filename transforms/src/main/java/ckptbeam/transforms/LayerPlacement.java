package ckptbeam.transforms;

import java.util.ArrayList;
import java.util.Collections;
import java.util.List;

/**
 * Which HF decoder layer goes to which pipeline stage, virtual chunk and stage-local slot (docs/mapping.md §4), and
 * where the embedding, the final norm with the output layer, and the MTP layers go.
 */
public final class LayerPlacement {
  /** One HF layer placed at a stage-local slot ({@code decoder.layers.{local}}). */
  public record Placed(int hfIndex, int local) {
    @Override
    public String toString() {
      return hfIndex + "->" + local;
    }
  }

  /** The content of one virtual chunk of one pipeline stage. */
  public static final class Chunk {
    public final int pp;
    public final int v;
    public final List<Placed> layers = new ArrayList<>();
    /** HF indices of the MTP layers held here, index m = position. */
    public final List<Integer> mtp = new ArrayList<>();
    public boolean embedding;
    public boolean finalNorm;

    Chunk(int pp, int v) {
      this.pp = pp;
      this.v = v;
    }
  }

  private final int pp;
  private final int chunks;
  private final List<Chunk> all = new ArrayList<>();
  private final boolean finalFirst;

  private LayerPlacement(int pp, int chunks, boolean finalFirst) {
    this.pp = pp;
    this.chunks = chunks;
    this.finalFirst = finalFirst;
    for (int p = 0; p < pp; p++) {
      for (int v = 0; v < chunks; v++) {
        all.add(new Chunk(p, v));
      }
    }
  }

  /** Computes the placement for resolved options ({@link LayoutOptions#resolve}). */
  public static LayerPlacement compute(ModelConfig cfg, LayoutOptions o) {
    LayerPlacement lp = new LayerPlacement(o.pp(), o.virtualChunks(), o.dualpipe());
    if (o.dualpipe()) {
      lp.placeDualpipe(o);
    } else {
      List<Integer> source = hfSequence(cfg, o);
      if (o.numLayerList() != null) {
        lp.placeList(o, source);
      } else if (o.layersPerVirtualStage() > 0) {
        lp.placeVirtual(o, source);
      } else {
        lp.placeEven(o, source);
      }
    }
    lp.chunk(0, 0).embedding = true;
    Chunk last = o.dualpipe() ? lp.chunk(0, 1) : lp.chunk(o.pp() - 1, lp.chunks - 1);
    last.finalNorm = true;
    for (int m = 0; m < o.mtpLayers(); m++) {
      last.mtp.add(cfg.hiddenLayers + m);
    }
    return lp;
  }

  /**
   * The HF layers consumed in order (§4.1): 0..R-1, or with {@code --first-k-dense-replace k} below the config's
   * value the first k dense layers followed by the MoE layers from the config's first MoE layer on.
   */
  static List<Integer> hfSequence(ModelConfig cfg, LayoutOptions o) {
    int real = o.numLayers() - o.noopLayers().size();
    List<Integer> s = new ArrayList<>();
    int k = o.firstKDense();
    int firstMoe = cfg.firstKDenseReplace;
    for (int i = 0; i < real; i++) {
      s.add(k < firstMoe && i >= k ? firstMoe + (i - k) : i);
    }
    return s;
  }

  private void placeEven(LayoutOptions o, List<Integer> source) {
    int c = o.numLayers() / o.pp();
    int next = 0;
    for (int p = 0; p < o.pp(); p++) {
      for (int slot = 0; slot < c; slot++) {
        if (!o.noopLayers().contains(p * c + slot)) {
          chunk(p, 0).layers.add(new Placed(source.get(next++), slot));
        }
      }
    }
  }

  private void placeList(LayoutOptions o, List<Integer> source) {
    int next = 0;
    int[] list = o.numLayerList();
    for (int p = 0; p < o.pp(); p++) {
      for (int slot = 0; slot < list[p]; slot++) {
        chunk(p, 0).layers.add(new Placed(source.get(next++), slot));
      }
    }
  }

  private void placeVirtual(LayoutOptions o, List<Integer> source) {
    int s = o.layersPerVirtualStage();
    int next = 0;
    for (int v = 0; v < chunks; v++) {
      for (int p = 0; p < o.pp(); p++) {
        int first = (v * o.pp() + p) * s;
        for (int slot = 0; slot < s; slot++) {
          if (!o.noopLayers().contains(first + slot)) {
            chunk(p, v).layers.add(new Placed(source.get(next++), slot));
          }
        }
      }
    }
  }

  private void placeDualpipe(LayoutOptions o) {
    int s = o.numLayers() / o.pp() / 2;
    List<Integer> remaining = new ArrayList<>();
    for (int i = 0; i < o.numLayers(); i++) {
      remaining.add(i);
    }
    List<Integer> order = new ArrayList<>();
    while (!remaining.isEmpty()) {
      List<Integer> head = new ArrayList<>(remaining.subList(0, s));
      List<Integer> tail = new ArrayList<>(remaining.subList(remaining.size() - s, remaining.size()));
      order.addAll(head);
      order.addAll(tail);
      remaining.subList(remaining.size() - s, remaining.size()).clear();
      remaining.subList(0, s).clear();
    }
    for (int p = 0; p < o.pp(); p++) {
      for (int v = 0; v < 2; v++) {
        int local = 0;
        for (int k = 0; k < s; k++) {
          int slot = order.get(p * 2 * s + v * s + k);
          if (o.noopLayers().contains(slot)) {
            continue;
          }
          int hf = slot - o.noopLayers().headSet(slot).size();
          chunk(p, v).layers.add(new Placed(hf, local++));
        }
      }
    }
  }

  public Chunk chunk(int p, int v) {
    return all.get(p * chunks + v);
  }

  public int pipelineStages() {
    return pp;
  }

  public int virtualChunks() {
    return chunks;
  }

  /** Dualpipe puts the final norm and output layer first in their chunk (§3.9). */
  public boolean finalFirst() {
    return finalFirst;
  }

  /** All chunks, stage by stage. */
  public List<Chunk> chunks() {
    return Collections.unmodifiableList(all);
  }
}
