package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorLocation;
import org.apache.beam.sdk.options.PipelineOptions;

import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * {@code fp8-to-bf16}: DeepSeek's FP8 release to bf16 on the CPU, file for file (docs/formats.md §3.6): the same shard
 * names, every tensor but the block scales of the weights they dequantise, FP8 weights as bf16, everything else as
 * stored; an index with {@code total_size}.
 */
public final class Fp8ToBf16Plan implements ConversionPlanner.IndexedPlan {
  private static final long serialVersionUID = 1L;

  private final TreeMap<String, List<String>> shards = new TreeMap<>();
  private final LinkedHashMap<String, String> weightMap = new LinkedHashMap<>();

  public Fp8ToBf16Plan(SafetensorsIndex index, ModelConfig cfg) {
    for (Map.Entry<String, String> e : index.weightMap().entrySet()) {
      String name = e.getKey();
      if (cfg.weightOfScale(name, index.weightMap()::containsKey) != null) {
        continue; // consumed by its weight
      }
      shards.computeIfAbsent(e.getValue(), k -> new ArrayList<>()).add(name);
      weightMap.put(name, e.getValue());
    }
  }

  @Override
  public List<String> targets() {
    return new ArrayList<>(shards.keySet());
  }

  @Override
  public Map<String, Shape> sourcesOf(String target) {
    Map<String, Shape> out = new LinkedHashMap<>();
    shards.get(target).forEach(n -> out.put(n, null)); // shapes are whatever the input holds
    return out;
  }

  @Override
  public WrittenFile write(String target, Map<String, TensorLocation> sources, String saveDir,
      PipelineOptions storage) throws IOException {
    List<AssembledTensor> tensors = new ArrayList<>();
    for (String name : shards.get(target)) {
      TensorLocation loc = sources.get(name);
      if (loc == null) {
        throw new IOException(target + ": tensor \"" + name + "\" was not found in the input");
      }
      Shape s = loc.shape();
      tensors.add(new AssembledTensor(name, s, List.of(Band.of(SourceSlice.whole(name, s.rows(), s.cols())))));
    }
    return HfShardWriter.write(target, tensors, sources, saveDir, storage);
  }

  @Override
  public byte[] indexJson(long totalSize) {
    return new SafetensorsIndex(weightMap, totalSize).toJson(2);
  }
}
