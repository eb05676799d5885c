package ckptbeam.transforms;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;

/**
 * The sources of HF input: each shard's header gives the tensors the index places in it; across shards, a tensor
 * stored twice is refused and tensors the index does not name are noted; FP8 weights become bf16 views dequantised
 * with their block scales as they are read.
 */
final class HfShardSources implements InputSources {
  /** The shards with the tensors the index places in each, or null when derived without the index. */
  private final List<SourceFile> shards;
  private final ModelConfig config;

  HfShardSources(List<SourceFile> shards, ModelConfig config) {
    this.shards = shards;
    this.config = config;
  }

  @Override
  public List<SourceFile> files() {
    if (shards == null) {
      throw new IllegalStateException("a derived plan lists no shards: the planned elements carry them");
    }
    return shards;
  }

  @Override
  public LocatedFile locate(SourceFile shard) throws IOException {
    LocatedFile located = SourceLocator.hfShard(shard);
    if (config.fp8 && config.v4()) {
      // every e8m0 scale of the shard, MXFP4's too (1/16 of the expert bytes), is read here, shard by shard on the
      // workers, before anything is written: a NaN code (255) is refused by name (V4 spec §7.2)
      Fp8Dequant.checkScalesOfFile(located.path(), located.tensors().values().stream()
          .filter(t -> t.dtype() == DType.F8_E8M0).toList());
    }
    return located;
  }

  @Override
  public Located assemble(List<LocatedFile> files) throws IOException {
    Map<String, String> unindexed = new TreeMap<>();
    Map<String, TensorLocation> located = SourceLocator.hfShardsLocated(files, unindexed);
    if (config.fp8) {
      located = SourceLocator.dequantizeFp8(located, config);
    }
    if (config.v4()) {
      SourceLocator.checkTid2eid(located.values(), config.routedExperts);
      located = canonicalNames(located);
    }
    return new Located(located, unindexedNote(unindexed).stream().toList());
  }

  /** V4's {@code .weight}-less spellings (HfNames#v4Alias) under their canonical names, as MindSpeed accepts them. */
  private static Map<String, TensorLocation> canonicalNames(Map<String, TensorLocation> located) {
    Map<String, TensorLocation> out = new java.util.LinkedHashMap<>();
    for (Map.Entry<String, TensorLocation> e : located.entrySet()) {
      String canonical = e.getKey() + ".weight";
      boolean alias = HfNames.v4Alias(canonical) != null && !located.containsKey(canonical);
      out.put(alias ? canonical : e.getKey(), e.getValue());
    }
    return out;
  }

  /** The note on tensors stored in shards that the index does not name. */
  static Optional<String> unindexedNote(Map<String, String> unindexed) {
    if (unindexed.isEmpty()) {
      return Optional.empty();
    }
    Map.Entry<String, String> first = unindexed.entrySet().iterator().next();
    return Optional.of(unindexed.size() + " tensor(s) stored in shards but absent from the index are not "
        + "converted, e.g. " + first.getKey() + " in " + first.getValue());
  }
}
