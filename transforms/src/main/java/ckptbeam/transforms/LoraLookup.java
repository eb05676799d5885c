package ckptbeam.transforms;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.compute.LoraMerge;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * Finds the base tensor and the LoRA factors of a planned key in one model mapping (docs/mapping.md §5.4): in a combined
 * checkpoint the base is {@code X.base_layer.weight} and the factors {@code X.lora_A.default.weight} /
 * {@code X.lora_B.default.weight} (lower-case a/b too); grouped-GEMM experts have {@code weightN_lora_a/_b}.
 */
final class LoraLookup {
  private final Map<String, PickleReader.TorchTensor> base;
  private final Map<String, PickleReader.TorchTensor> lora;
  private final LoraOptions options;

  LoraLookup(Map<String, PickleReader.TorchTensor> base, Map<String, PickleReader.TorchTensor> lora,
      LoraOptions options) {
    this.base = base;
    this.lora = lora;
    this.options = options;
  }

  private static boolean grouped(String key) {
    return TensorMapping.isGroupedExperts(key);
  }

  private static String module(String key) {
    return key.endsWith(".weight") ? key.substring(0, key.length() - 7) : null;
  }

  /** The key the base tensor is stored under. */
  String baseKey(String key) {
    String x = module(key);
    if (options != null && x != null && !grouped(key) && base.containsKey(x + ".base_layer.weight")) {
      return x + ".base_layer.weight";
    }
    return key;
  }

  /** Every key of the mappings this planned key accounts for (base, base_layer, factors). */
  List<String> keysOf(String key) {
    List<String> out = new ArrayList<>(List.of(key));
    if (options == null) {
      return out; // not merging: LoRA keys stay unexpected, and the error says to pass --lora-r
    }
    if (grouped(key)) {
      out.add(key + "_lora_a");
      out.add(key + "_lora_b");
      return out;
    }
    String x = module(key);
    if (x != null) {
      for (String s : new String[] {".base_layer.weight", ".lora_A.default.weight", ".lora_a.default.weight",
          ".lora_B.default.weight", ".lora_b.default.weight"}) {
        out.add(x + s);
      }
    }
    return out;
  }

  /** The base location, with its LoRA delta when merging and the factors are present. */
  TensorLocation merge(String key, TensorLocation loc, TorchCheckpointReader loraReader, String file, long hidden)
      throws IOException {
    if (options == null) {
      return loc;
    }
    String x = module(key);
    PickleReader.TorchTensor a;
    PickleReader.TorchTensor b;
    String aKey;
    String bKey;
    if (grouped(key)) {
      aKey = key + "_lora_a";
      bKey = key + "_lora_b";
    } else if (x != null) {
      aKey = lora.containsKey(x + ".lora_a.default.weight") ? x + ".lora_a.default.weight" : x + ".lora_A.default.weight";
      bKey = lora.containsKey(x + ".lora_b.default.weight") ? x + ".lora_b.default.weight" : x + ".lora_B.default.weight";
    } else {
      return loc;
    }
    a = lora.get(aKey);
    b = lora.get(bKey);
    boolean hasBaseLayer = !baseKey(key).equals(key);
    if (a == null && b == null && !hasBaseLayer) {
      return loc;
    }
    if (a == null || b == null) {
      throw new IOException(file + ": LoRA factor \"" + (a == null ? aKey : bKey) + "\" is missing for \"" + key + "\"");
    }
    TensorLocation al = loraReader.locate(loc.name() + "#lora_a", a);
    TensorLocation bl = loraReader.locate(loc.name() + "#lora_b", b);
    long r = options.rank;
    long numel = loc.shape().numel();
    try {
      if (grouped(key)) {
        // weight1: [E_l, H, 2F_t] += A1 [E_l, H, r] · B1 [E_l, r, 2F_t]; weight2: [E_l, F_t, H] += A2 · B2 [E_l, r, H]
        boolean w1 = key.endsWith("weight1");
        long experts = w1 ? al.shape().numel() / (hidden * r) : bl.shape().numel() / (r * hidden);
        long rows = w1 ? hidden : numel / (experts * hidden);
        long cols = numel / (experts * rows);
        return loc.computedBy(new LoraMerge(al, bl, experts, rows, cols, r, options.scale()));
      }
      // W [out, in] += B [out, r] · A [r, in]
      long out = loc.shape().rows();
      long in = loc.shape().cols();
      if (a.shape().rank() != 2 || a.shape().dim(0) != r || a.shape().dim(1) != in || b.shape().rank() != 2
          || b.shape().dim(0) != out || b.shape().dim(1) != r) {
        throw new CheckpointFormatException(file, "LoraShape", "\"" + key + "\" " + loc.shape() + " cannot take "
            + aKey + " " + a.shape() + " and " + bKey + " " + b.shape() + " with --lora-r " + r);
      }
      return loc.computedBy(new LoraMerge(bl, al, 1, out, in, r, options.scale()));
    } catch (IllegalArgumentException | ArithmeticException e) {
      throw new CheckpointFormatException(file, "LoraShape", "\"" + key + "\": " + e.getMessage());
    }
  }
}
