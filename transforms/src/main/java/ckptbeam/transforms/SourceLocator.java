package ckptbeam.transforms;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import java.io.IOException;
import java.util.HashMap;
import java.util.ArrayList;
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
  public static Map<String, TensorLocation> hfShards(List<ShardRef> shards) throws IOException {
    return hfShards(shards, new TreeMap<>());
  }

  /**
   * {@link #hfShards(List)}, and in {@code unindexed} every tensor a shard stores that the index does not name
   * (tensor → shard): loaders that go by the index never see them, so they are not converted.
   */
  public static Map<String, TensorLocation> hfShards(List<ShardRef> shards, Map<String, String> unindexed)
      throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    Map<String, String> storedIn = new HashMap<>();
    for (ShardRef shard : shards) {
      SafetensorsHeader header = SafetensorsHeader.read(shard.path());
      for (TensorLocation t : header.tensors()) {
        String other = storedIn.putIfAbsent(t.name(), shard.path());
        if (other != null) {
          throw new IOException("tensor \"" + t.name() + "\" is stored in two shards, " + other + " and "
              + shard.path() + "; refusing to choose one copy (loaders disagree on which wins)");
        }
        unindexed.put(t.name(), shard.path());
      }
      shard.tensors().forEach(unindexed::remove);
      for (String name : shard.tensors()) {
        TensorLocation loc = header.tensor(name);
        if (loc == null) {
          throw new IOException(shard.path() + ": the index places tensor \"" + name + "\" in this shard, but the "
              + "shard does not hold it");
        }
        out.put(name, loc);
      }
    }
    return out;
  }

  /**
   * Pairs each FP8 weight with its {@code <name>_scale_inv} (wherever the index put it) and replaces it by a bf16
   * view that dequantises as it is read; the scales themselves are consumed. A weight without its scale is an error
   * naming both (DeepSeek's script only warns and keeps FP8 bytes).
   */
  public static Map<String, TensorLocation> dequantizeFp8(Map<String, TensorLocation> located, int blockRows,
      int blockCols) throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    List<Fp8Dequant> dequants = new ArrayList<>();
    for (TensorLocation t : located.values()) {
      String name = t.name();
      if (name.endsWith(SCALE_SUFFIX) && located.containsKey(name.substring(0, name.length() - SCALE_SUFFIX.length()))) {
        continue;
      }
      if (t.dtype() != DType.F8_E4M3) {
        out.put(name, t);
        continue;
      }
      TensorLocation scale = located.get(name + SCALE_SUFFIX);
      if (scale == null) {
        throw new CheckpointFormatException(t.file(), "MissingScale", "tensor \"" + name + "\" is F8_E4M3 but the "
            + "checkpoint has no \"" + name + SCALE_SUFFIX + "\" to dequantise it with");
      }
      Fp8Dequant dequant = new Fp8Dequant(t, scale, blockRows, blockCols);
      out.put(name, dequant.asBf16());
      dequants.add(dequant);
    }
    Fp8Dequant.checkScales(dequants); // before anything is written
    return out;
  }

  /**
   * Every tensor of every rank file of the layout, from the rank files' pickles, under its pipeline name
   * ({@link Mcore2HfPlan#sourceName}). Each rank file is checked against the layout: a missing key or a wrong shape
   * is an error naming the file and the key, and so is a tensor the layout would not convert (a dropped MTP layer,
   * experts of another layout): exports must not silently lose weights. LoRA factors are merged as the base is read
   * when {@code lora} is given; NF4 entries are dequantised.
   */
  public static Map<String, TensorLocation> rankFiles(Mcore2HfPlan plan, String loadDir, LoraOptions lora)
      throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    // the dtype a key has in the first rank file that holds it: its copies and slices in other rank files must agree
    Map<String, TensorLocation> firstOfKey = new LinkedHashMap<>();
    boolean warnedNf4 = false;
    for (RankFile rank : plan.forward().rankFiles()) {
      String path = CheckpointFiles.resolve(loadDir, plan.rankPath(rank));
      TorchCheckpointReader reader = TorchCheckpointReader.open(path);
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
          TensorLocation sibling = firstOfKey.putIfAbsent(chunk.getKey() + "/" + baseKey, loc);
          if (sibling != null && sibling.dtype() != loc.dtype()) {
            throw new IOException(path + ": " + chunk.getKey() + "/" + baseKey + " is " + loc.dtype() + " but the same "
                + "tensor is " + sibling.dtype() + " in " + sibling.file() + "; the parts of one tensor must share "
                + "a dtype");
          }
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
   * Every LoRA factor of each rank file under its canonical name ({@code X.lora_A.default.weight}; the
   * {@code lora_a} spelling is accepted), for LoRA export.
   */
  public static Map<String, TensorLocation> loraFactors(List<String> rankPaths, String loadDir) throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    for (String rankPath : rankPaths) {
      String path = CheckpointFiles.resolve(loadDir, rankPath);
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": rank file missing");
      }
      String rankDir = rankPath.split("/")[1];
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
    }
    return out;
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
