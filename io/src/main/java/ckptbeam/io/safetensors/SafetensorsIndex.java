package ckptbeam.io.safetensors;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The sharded-checkpoint index {@code model.safetensors.index.json}: which shard file holds each tensor
 * (docs/formats.md §2.6). Shard names are untrusted: one that could leave the checkpoint folder is refused.
 */
public final class SafetensorsIndex {
  public static final String FILE_NAME = "model.safetensors.index.json";
  /** Indexes of real checkpoints are a few MB (DeepSeek-V3: about 8.5 MB). */
  public static final long MAX_INDEX_BYTES = 256L << 20;

  /** The name of shard {@code i} (1-based) of {@code n}, as HF writes them: {@code model-00001-of-000062.safetensors}. */
  public static String shardName(long i, long n) {
    return String.format("model-%05d-of-%06d.safetensors", i, n);
  }

  private static final ObjectMapper JSON = new ObjectMapper()
      .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);

  private final Map<String, String> weightMap;
  private final Long totalSize;

  public SafetensorsIndex(Map<String, String> weightMap, Long totalSize) {
    this.weightMap = Collections.unmodifiableMap(new LinkedHashMap<>(weightMap));
    this.totalSize = totalSize;
  }

  /**
   * Reads {@code dir/model.safetensors.index.json}; a folder without one (a single {@code model.safetensors}, as small
   * models are saved) is indexed from the headers of its top-level {@code *.safetensors} files, every one of them: a
   * tensor in two of them is refused, naming both.
   */
  public static SafetensorsIndex read(String dir) throws IOException {
    String path = CheckpointFiles.resolve(dir, FILE_NAME);
    if (CheckpointFiles.exists(path)) {
      return parse(path, CheckpointFiles.readSmallFile(path, MAX_INDEX_BYTES));
    }
    List<String> shards = topLevelShards(dir);
    if (shards.isEmpty()) {
      throw new FileNotFoundException(path + ": no such file, and no *.safetensors file beside it (a sharded HF "
          + "checkpoint needs its index)");
    }
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (String shard : shards) {
      checkShardName(dir, shard, shard);
      for (ckptbeam.io.tensor.TensorLocation t : SafetensorsHeader.read(CheckpointFiles.resolve(dir, shard))
          .tensors()) {
        String other = weightMap.putIfAbsent(t.name(), shard);
        if (other != null) {
          throw new CheckpointFormatException(CheckpointFiles.resolve(dir, shard), "DuplicateTensor", "tensor \""
              + t.name() + "\" is also in " + other + ", and there is no " + FILE_NAME + " to say which one counts");
        }
      }
    }
    return new SafetensorsIndex(weightMap, null);
  }

  /** The {@code *.safetensors} files directly in {@code dir} (not in its subfolders), by name, sorted. */
  public static List<String> topLevelShards(String dir) throws IOException {
    return CheckpointFiles.list(dir).stream().filter(f -> !f.contains("/") && f.endsWith(".safetensors")).toList();
  }

  public static SafetensorsIndex parse(String source, byte[] json) throws CheckpointFormatException {
    JsonNode root;
    try {
      root = JSON.readTree(json);
    } catch (IOException e) {
      String detail = e instanceof JsonProcessingException
          ? ((JsonProcessingException) e).getOriginalMessage() : e.getMessage();
      throw new CheckpointFormatException(source, "InvalidIndex", "not valid JSON: " + detail);
    }
    if (root == null || !root.isObject()) {
      throw new CheckpointFormatException(source, "InvalidIndex", "the index is not a JSON object");
    }
    JsonNode map = root.get("weight_map");
    if (map == null || !map.isObject()) {
      throw new CheckpointFormatException(source, "InvalidIndex", "\"weight_map\" is missing or not an object");
    }
    Map<String, String> weightMap = new LinkedHashMap<>();
    for (Iterator<Map.Entry<String, JsonNode>> it = map.fields(); it.hasNext(); ) {
      Map.Entry<String, JsonNode> e = it.next();
      if (!e.getValue().isTextual()) {
        throw new CheckpointFormatException(source, "InvalidIndex",
            "weight_map entry \"" + e.getKey() + "\" is not a file name string");
      }
      String shard = e.getValue().asText();
      checkShardName(source, e.getKey(), shard);
      weightMap.put(e.getKey(), shard);
    }
    Long totalSize = null;
    JsonNode meta = root.get("metadata");
    if (meta != null && meta.isObject() && meta.get("total_size") != null && meta.get("total_size").canConvertToLong()) {
      totalSize = meta.get("total_size").asLong();
    }
    return new SafetensorsIndex(weightMap, totalSize);
  }

  /**
   * A shard name must stay inside the checkpoint folder: relative, '/'-separated, with no empty, "." or ".."
   * segment, no backslash, no URL scheme and no control character.
   */
  static void checkShardName(String source, String tensor, String shard) throws CheckpointFormatException {
    String why = null;
    if (shard.isEmpty()) {
      why = "is empty";
    } else if (shard.startsWith("/") || shard.contains("\\") || shard.contains(":")) {
      why = "is not a relative path inside the checkpoint folder";
    } else if (shard.chars().anyMatch(c -> c < 0x20)) {
      why = "contains a control character";
    } else {
      for (String seg : shard.split("/", -1)) {
        if (seg.isEmpty() || seg.equals(".") || seg.equals("..")) {
          why = "escapes the checkpoint folder or has an empty path segment";
          break;
        }
      }
    }
    if (why != null) {
      throw new CheckpointFormatException(source, "UnsafeShardName",
          "tensor \"" + tensor + "\" names shard \"" + shard + "\", which " + why);
    }
  }

  /** Tensor name → shard file name, in index order. */
  public Map<String, String> weightMap() {
    return weightMap;
  }

  /** {@code metadata.total_size}, or null when absent. */
  public Long totalSize() {
    return totalSize;
  }

  /** The distinct shard file names, sorted. */
  public List<String> shards() {
    return new ArrayList<>(new TreeSet<>(weightMap.values()));
  }

  /**
   * The index as JSON, the way transformers writes it: {@code {"metadata": {"total_size": N}, "weight_map": ...}}
   * indented by {@code indent} spaces, keys in insertion order, with a trailing newline.
   */
  public byte[] toJson(int indent) {
    ObjectNode root = JSON.createObjectNode();
    ObjectNode meta = root.putObject("metadata");
    if (totalSize != null) {
      meta.put("total_size", totalSize);
    }
    ObjectNode map = root.putObject("weight_map");
    weightMap.forEach(map::put);
    return PythonJson.write(root, indent);
  }
}
