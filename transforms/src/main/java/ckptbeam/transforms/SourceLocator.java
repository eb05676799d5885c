package ckptbeam.transforms;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.compute.Mxfp4Dequant;
import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.HashMap;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Finds where the bytes of every source tensor are, reading only headers: safetensors shard headers, rank-file
 * pickles (never tensor bytes). Each source becomes a {@link TensorLocation}, possibly computed as it is read (FP8
 * dequantisation, a LoRA merge, NF4 dequantisation). Then each target file gets the locations it needs, checked
 * against the shapes the plan expects.
 */
public final class SourceLocator {
  /** The suffix of an FP8 weight's block scales: {@code X.weight_scale_inv}. */
  public static final String SCALE_SUFFIX = "_scale_inv";
  private static final Logger LOG = LoggerFactory.getLogger(SourceLocator.class);

  private SourceLocator() {}

  /**
   * Every tensor the index places in each shard, from the shard's header. A tensor the index names but the shard
   * lacks is an error naming both; so is a tensor stored in two shards, whatever the index says (loaders disagree
   * on which copy wins, so neither is taken).
   */
  public static Map<String, TensorLocation> hfShards(List<SourceFile> shards) throws IOException {
    List<LocatedFile> located = new ArrayList<>();
    for (SourceFile shard : shards) {
      located.add(hfShard(shard));
    }
    return hfShardsLocated(located, new TreeMap<>());
  }

  /**
   * One shard, from its header: every tensor the index places in it (one it lacks is an error naming both), and
   * the tensors it stores that the index does not name (loaders that go by the index never see them).
   */
  public static LocatedFile hfShard(SourceFile shard) throws IOException {
    SafetensorsHeader header = SafetensorsHeader.read(shard.path());
    Map<String, TensorLocation> placed = new LinkedHashMap<>();
    for (String name : shard.tensors()) {
      TensorLocation loc = header.tensor(name);
      if (loc == null) {
        throw new IOException(shard.path() + ": the index places tensor \"" + name + "\" in this shard, but the "
            + "shard does not hold it");
      }
      placed.put(name, loc);
    }
    List<String> unindexed = new ArrayList<>();
    for (TensorLocation t : header.tensors()) {
      if (!placed.containsKey(t.name())) {
        unindexed.add(t.name());
      }
    }
    return new LocatedFile(shard.path(), placed, unindexed);
  }

  /**
   * The located shards as one map (shards taken in path order, whatever order they were located in); a tensor
   * stored in two shards is refused whatever the index says, and in {@code unindexed} go the tensors a shard stores
   * that the index does not name (tensor → shard).
   */
  public static Map<String, TensorLocation> hfShardsLocated(List<LocatedFile> shards, Map<String, String> unindexed)
      throws IOException {
    List<LocatedFile> sorted = new ArrayList<>(shards);
    sorted.sort(Comparator.comparing(LocatedFile::path));
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    Map<String, String> storedIn = new HashMap<>();
    for (LocatedFile shard : sorted) {
      List<String> stored = new ArrayList<>(shard.tensors().keySet());
      stored.addAll(shard.unindexed());
      for (String name : stored) {
        String other = storedIn.putIfAbsent(name, shard.path());
        if (other != null) {
          throw new IOException("tensor \"" + name + "\" is stored in two shards, " + other + " and "
              + shard.path() + "; refusing to choose one copy (loaders disagree on which wins)");
        }
      }
      shard.unindexed().forEach(n -> unindexed.put(n, shard.path()));
      out.putAll(shard.tensors());
    }
    return out;
  }

  /**
   * Pairs each quantised weight with its block scales (wherever the index put them; named as {@link
   * ModelConfig#scaleName} says) and replaces it by a bf16 view that dequantises as it is read; the scales themselves
   * are consumed. FP8 (F8_E4M3) weights of either family; V4's MXFP4 experts (I8, F8_E8M0 scales per 32). A weight
   * without its scale is an error naming both (DeepSeek's scripts only warn and keep the raw bytes); for V4 so is a
   * scale without its weight, and a scaled tensor that is neither FP8 nor MXFP4 (docs/mapping.md §11.6).
   */
  public static Map<String, TensorLocation> dequantizeFp8(Map<String, TensorLocation> located, ModelConfig cfg)
      throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    List<Fp8Dequant> dequants = new ArrayList<>();
    for (TensorLocation t : located.values()) {
      String name = t.name();
      if (cfg.weightOfScale(name, located::containsKey) != null) {
        continue;
      }
      if (cfg.v4() && cfg.isScaleName(name)) {
        throw new CheckpointFormatException(t.file(), "OrphanScale", "scale \"" + name + "\" belongs to no weight of "
            + "the checkpoint");
      }
      TensorLocation scale = located.get(cfg.scaleName(name));
      boolean mxfp4 = cfg.v4() && t.dtype() == DType.I8;
      if (t.dtype() != DType.F8_E4M3 && !mxfp4) {
        if (cfg.v4() && scale != null) {
          throw new CheckpointFormatException(t.file(), "Quantised", "tensor \"" + name + "\" is " + t.dtype()
              + " with a scale \"" + scale.name() + "\": neither FP8 (F8_E4M3) nor MXFP4 (I8)");
        }
        if (t.dtype() == DType.F8_E5M2 || cfg.v4() && t.dtype().size() == 1) {
          // DeepSeek's reference would decode any other 1-byte tensor as FP8 and fail, or keep its raw bytes
          throw new CheckpointFormatException(t.file(), "Quantised", "tensor \"" + name + "\" is " + t.dtype()
              + ": DeepSeek's quantised weights are F8_E4M3" + (cfg.v4() ? " or MXFP4 (I8)" : "") + " with block "
              + "scales, and other weights are not 1-byte");
        }
        out.put(name, t);
        continue;
      }
      if (scale == null) {
        String v3 = name + SCALE_SUFFIX;
        throw new CheckpointFormatException(t.file(), "MissingScale", "tensor \"" + name + "\" is " + t.dtype()
            + " but the checkpoint has no \"" + cfg.scaleName(name) + "\" to dequantise it with"
            + (cfg.v4() && located.containsKey(v3) ? " (it has \"" + v3 + "\": V3's scale naming, not V4's)" : ""));
      }
      if (mxfp4) {
        out.put(name, new Mxfp4Dequant(t, scale).asBf16());
        continue;
      }
      Fp8Dequant dequant = new Fp8Dequant(t, scale, cfg.fp8BlockRows, cfg.fp8BlockCols, cfg.v4());
      out.put(name, dequant.asBf16());
      dequants.add(dequant);
    }
    Fp8Dequant.checkScales(dequants); // before anything is written
    return out;
  }

  /**
   * One rank file (and its LoRA counterpart), from its pickle: every tensor the layout expects in it, under its pipeline name
   * ({@link Mcore2HfPlan#sourceName}). Each rank file is checked against the layout: a missing key or a wrong shape
   * is an error naming the file and the key, and so is a tensor the layout would not convert (a dropped MTP layer,
   * experts of another layout): exports must not silently lose weights. LoRA factors are merged as the base is read
   * when {@code lora} is given; NF4 entries are dequantised.
   */
  public static LocatedFile rankFile(Mcore2HfPlan plan, RankFile rank, String loadDir, LoraOptions lora)
      throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    boolean warnedNf4 = false;
    String path = CheckpointFiles.resolve(loadDir, plan.rankPath(rank));
    TorchCheckpointReader reader = TorchCheckpointReader.open(path);
    if (plan.forward().config().v4()) {
      checkArgsAgree(reader, plan.forward().options());
    }
    TorchCheckpointReader loraReader = reader;
    if (lora != null && lora.loraDir != null) {
      String loraPath = CheckpointFiles.resolve(lora.loraDir, lora.loraIterationDir + "/" + rank.dirName() + "/"
          + RankFile.FILE_NAME);
      if (!CheckpointFiles.exists(loraPath)) {
        throw new IOException(loraPath + ": the --lora-load checkpoint has no rank file for " + rank.dirName());
      }
      loraReader = TorchCheckpointReader.open(loraPath);
    }
    for (Map.Entry<String, List<AssembledTensor>> chunk : plan.forward().contents(rank).entrySet()) {
      Map<String, PickleReader.TorchTensor> present = reader.tensors(chunk.getKey());
      Map<String, PickleReader.TorchTensor> loraTensors = loraReader == reader ? present
          : loraReader.tensors(chunk.getKey());
      LoraLookup lookup = new LoraLookup(present, loraTensors, lora);
      TreeSet<String> unexpected = new TreeSet<>(present.keySet());
      chunk.getValue().forEach(t -> unexpected.removeAll(lookup.keysOf(t.key())));
      chunk.getValue().forEach(t -> unexpected.removeAll(Nf4Entries.siblings(t.key())));
      unexpected.removeIf(k -> k.endsWith("_extra_state"));
      // name the most telling one: an MTP or LoRA key says which flag is missing
      String example = unexpected.stream().filter(k -> !hint(k, lora).equals(hint("", lora))).findFirst()
          .orElse(unexpected.isEmpty() ? "" : unexpected.first());
      String also = unexpected.isEmpty() ? "" : "; it also holds " + unexpected.size() + " tensor(s) the layout "
          + "would not convert, e.g. \"" + example + "\"" + hint(example, lora);
      for (AssembledTensor t : chunk.getValue()) {
        String baseKey = lookup.baseKey(t.key());
        PickleReader.TorchTensor found = present.get(baseKey);
        if (found == null) {
          throw new IOException(path + ": " + chunk.getKey() + " has no tensor \"" + t.key() + "\", which the "
              + "layout expects" + (also.isEmpty() ? "; check the layout flags against the ones used to write the "
              + "checkpoint" : also));
        }
        String name = Mcore2HfPlan.sourceName(rank, chunk.getKey(), t.key());
        if (Nf4Entries.isNf4(present, baseKey)) {
          TensorLocation nf4 = Nf4Entries.dequantised(reader, present, baseKey, name);
          if (!nf4.shape().equals(t.shape())) {
            throw new IOException(path + ": " + chunk.getKey() + "/" + baseKey + " is NF4 of shape " + nf4.shape()
                + " but the layout and config.json imply " + t.shape());
          }
          if (!warnedNf4) {
            LOG.warn("{}: NF4-quantised weights are dequantised to {}; the result is lossy (the NF4 code points, "
                + "not the original weights)", path, nf4.dtype());
            warnedNf4 = true;
          }
          out.put(name, nf4);
          continue;
        }
        if (!found.shape().equals(t.shape())) {
          throw new IOException(path + ": " + chunk.getKey() + "/" + baseKey + " has shape " + found.shape()
              + " but the layout and config.json imply " + t.shape());
        }
        TensorLocation loc = reader.locate(name, found);
        out.put(name, lookup.merge(t.key(), loc, loraReader, path, plan.forward().config().hiddenSize));
      }
      if (!unexpected.isEmpty()) {
        throw new IOException(path + ": " + chunk.getKey() + also.substring(also.indexOf(" holds")));
      }
      if (loraReader != reader) {
        TreeSet<String> leftover = new TreeSet<>(loraTensors.keySet());
        chunk.getValue().forEach(t -> leftover.removeAll(lookup.keysOf(t.key())));
        leftover.removeIf(k -> k.endsWith("_extra_state") || !k.toLowerCase(Locale.ROOT).contains("lora"));
        if (!leftover.isEmpty()) {
          throw new IOException(loraReader.file() + ": " + chunk.getKey() + " holds LoRA weights for a module the "
              + "layout does not hold, e.g. \"" + leftover.first() + "\"");
        }
      }
    }
    if (plan.forward().config().v4()) {
      checkTid2eid(out.values(), plan.forward().config().routedExperts); // on the worker that reads this rank file
    }
    return new LocatedFile(path, out, List.of());
  }

  /**
   * The located rank files as one map (in path order, whatever order they were located in). The copies and slices of
   * one tensor in different rank files must share a dtype: the first file that holds a key sets it.
   */
  public static Map<String, TensorLocation> rankFilesLocated(List<LocatedFile> files) throws IOException {
    List<LocatedFile> sorted = new ArrayList<>(files);
    sorted.sort(Comparator.comparing(LocatedFile::path));
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    Map<String, TensorLocation> firstOfKey = new HashMap<>();
    for (LocatedFile f : sorted) {
      for (Map.Entry<String, TensorLocation> e : f.tensors().entrySet()) {
        String key = e.getKey().substring(e.getKey().indexOf(':') + 1); // chunk/key, the same in every rank file
        TensorLocation loc = e.getValue();
        TensorLocation sibling = firstOfKey.putIfAbsent(key, loc);
        if (sibling != null && sibling.dtype() != loc.dtype()) {
          throw new IOException(f.path() + ": " + key + " is " + loc.dtype() + " but the same tensor is "
              + sibling.dtype() + " in " + sibling.file() + "; the parts of one tensor must share a dtype");
        }
        out.put(e.getKey(), loc);
      }
    }
    return out;
  }

  /** What to do about an unexpected key: the flag that converts it, when one does. */
  private static String hint(String key, LoraOptions lora) {
    if (key.contains("mtp")) {
      return "; pass --mtp-num-layers to convert the MTP layers";
    }
    if (key.toLowerCase(Locale.ROOT).contains("lora")) {
      return lora == null ? "; LoRA weights are present: pass --lora-r and --lora-alpha to merge them"
          : "; LoRA weights for a module this layout does not hold: check the layout flags against the ones used "
              + "to write the checkpoint";
    }
    return "; check the layout flags against the ones used to write the checkpoint";
  }

  /**
   * The LoRA factors of one rank file ({@code …/mp_rank_XX/model_optim_rng.pt}) under their canonical names
   * ({@code X.lora_A.default.weight}; the {@code lora_a} spelling is accepted), for LoRA export.
   */
  public static LocatedFile loraFactorFile(SourceFile file) throws IOException {
    String path = file.path();
    if (!CheckpointFiles.exists(path)) {
      throw new IOException(path + ": rank file missing");
    }
    String[] parts = path.split("/");
    String rankDir = parts[parts.length - 2];
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    TorchCheckpointReader reader = TorchCheckpointReader.open(path);
    for (Object top : ((Map<?, ?>) reader.root()).keySet()) {
      if (!(top instanceof String) || !((String) top).startsWith("model")) {
        continue;
      }
      for (Map.Entry<String, PickleReader.TorchTensor> e : reader.tensors((String) top).entrySet()) {
        String key = e.getKey().replace(".lora_a.default.", ".lora_A.default.").replace(".lora_b.default.",
            ".lora_B.default.");
        if (key.contains(".lora_A.default.") || key.contains(".lora_B.default.")) {
          String name = rankDir + ":" + top + "/" + key;
          out.put(name, reader.locate(name, e.getValue()));
        }
      }
    }
    return new LocatedFile(path, out, List.of());
  }

  /**
   * DeepSeek-V4's hash routing tables (HF {@code ffn.gate.tid2eid}, mcore {@code mlp.router.tid2eid}): an integer
   * dtype and every entry an expert id in [0, {@code experts}) (V4 spec §7.2), read before anything is written (a few
   * MB per hash layer). A wrong id would route tokens to an expert that is not there.
   */
  static void checkTid2eid(Iterable<TensorLocation> tensors, long experts) throws IOException {
    for (TensorLocation t : tensors) {
      if (!t.name().endsWith(".ffn.gate.tid2eid") && !t.name().endsWith(".mlp.router.tid2eid")) {
        continue;
      }
      if (t.dtype() != DType.I32 && t.dtype() != DType.I64) {
        throw new CheckpointFormatException(t.file(), "Tid2eid", "\"" + t.name() + "\" is " + t.dtype()
            + ", not an integer table of expert ids (I32 or I64)");
      }
      int size = t.dtype().size();
      long count = t.shape().numel();
      ByteBuffer buf = ByteBuffer.allocate(1 << 20).order(ByteOrder.LITTLE_ENDIAN);
      try (RangeReader r = CheckpointFiles.open(t.file())) {
        for (long done = 0; done < count; ) {
          int n = (int) Math.min(count - done, buf.capacity() / size);
          buf.clear().limit(n * size);
          r.readFully(t.offset() + done * size, buf);
          for (int i = 0; i < n; i++) {
            long id = size == 4 ? buf.getInt(i * 4) : buf.getLong(i * 8);
            if (id < 0 || id >= experts) {
              throw new CheckpointFormatException(t.file(), "Tid2eid", "\"" + t.name() + "\" entry " + (done + i)
                  + " is expert " + id + ", outside 0.." + (experts - 1) + " (n_routed_experts)");
            }
          }
          done += n;
        }
      }
    }
  }
  /**
   * A DeepSeek-V4 rank file's args must name the layout being read (taken from the first rank file's args, or the
   * flags): a file of another checkpoint mixed into the folder is refused by name (V4 spec §8 #22), not read with the
   * wrong layout.
   */
  private static void checkArgsAgree(TorchCheckpointReader reader, LayoutOptions o) throws IOException {
    if (!(reader.root() instanceof Map<?, ?> root) || !(root.get("args") instanceof PickleReader.PyObject ns)
        || !(ns.state instanceof Map<?, ?> args)) {
      return;
    }
    Map<String, Integer> layout = new LinkedHashMap<>();
    layout.put("tensor_model_parallel_size", o.tp());
    layout.put("pipeline_model_parallel_size", o.pp());
    layout.put("expert_model_parallel_size", o.ep());
    layout.put("num_layers", o.numLayers());
    for (Map.Entry<String, Integer> field : layout.entrySet()) {
      if (args.get(field.getKey()) instanceof Number n && n.intValue() != field.getValue()) {
        throw new IOException(reader.file() + ": its args say " + field.getKey() + " " + n + ", but the layout being "
            + "read (the first rank file's args, or the flags) has " + field.getValue() + ": a rank file of another "
            + "checkpoint?");
      }
    }
  }

  /**
   * The located sources of one target: every source the plan names for it, checked against the shape the plan
   * expects; dtypes the conversion cannot read are refused.
   */
  public static Map<String, TensorLocation> forTarget(ConversionPlan plan, String target,
      Map<String, TensorLocation> located) throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    for (Map.Entry<String, Shape> need : plan.sourcesOf(target).entrySet()) {
      TensorLocation loc = located.get(need.getKey());
      if (loc == null) {
        throw new IOException("tensor \"" + need.getKey() + "\" is needed but is not in the input checkpoint");
      }
      if (loc.dtype() == DType.F8_E4M3 || loc.dtype() == DType.F8_E5M2) {
        throw new IOException(loc.file() + ": tensor \"" + loc.name() + "\" is " + loc.dtype()
            + " but config.json declares no quantization_config, so it cannot be dequantised");
      }
      if (need.getValue() != null && !loc.shape().equals(need.getValue())) {
        throw new IOException(loc.file() + ": tensor \"" + loc.name() + "\" has shape " + loc.shape()
            + " but config.json implies " + need.getValue());
      }
      out.put(need.getKey(), loc);
    }
    return out;
  }
}
