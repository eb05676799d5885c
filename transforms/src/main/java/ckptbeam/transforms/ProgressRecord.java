package ckptbeam.transforms;

import ckptbeam.transforms.beam.WrittenFile;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.Sha256;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * What a writer leaves next to the output once a target file is complete ({@code .ckptbeam-progress/…json}): the
 * file's size, SHA-256 and tensors, and the fingerprint of the conversion that wrote it. A {@code --resume} run keeps
 * a file only if its record carries the same fingerprint and the file on disk still has that size and hash.
 */
public final class ProgressRecord {
  public static final String DIR = ".ckptbeam-progress";
  private static final ObjectMapper JSON = new ObjectMapper();

  private ProgressRecord() {}

  public static String path(String saveDir, String target) {
    return CheckpointFiles.resolve(saveDir, DIR + "/" + Sha256.of(target.getBytes(StandardCharsets.UTF_8)) + ".json");
  }

  public static void write(String saveDir, String fingerprint, WrittenFile f) throws IOException {
    ObjectNode root = JSON.createObjectNode();
    root.put("fingerprint", fingerprint);
    root.set("file", toJson(f));
    CheckpointFiles.writeSmallFile(path(saveDir, f.relativePath), JSON.writeValueAsBytes(root));
  }

  /** The file as recorded, if the record exists, matches the fingerprint and the file is intact; else null. */
  public static WrittenFile reusable(String saveDir, String fingerprint, String target) throws IOException {
    String record = path(saveDir, target);
    if (!CheckpointFiles.exists(record)) {
      return null;
    }
    JsonNode root;
    try {
      root = JSON.readTree(CheckpointFiles.readSmallFile(record, 256L << 20));
    } catch (IOException e) {
      return null; // a torn record: rewrite the file
    }
    if (root == null || !fingerprint.equals(root.path("fingerprint").asText())) {
      return null;
    }
    WrittenFile f = fromJson(root.get("file"));
    String path = CheckpointFiles.resolve(saveDir, target);
    if (!f.relativePath.equals(target) || CheckpointFiles.sizeOrMissing(path) != f.bytes
        || !Sha256.ofFile(path).equals(f.sha256)) {
      return null;
    }
    return f.reused();
  }

  public static ObjectNode toJson(WrittenFile f) {
    ObjectNode o = JSON.createObjectNode();
    o.put("path", f.relativePath);
    o.put("size", f.bytes);
    o.put("sha256", f.sha256);
    o.put("tensor_bytes", f.tensorBytes);
    ArrayNode tensors = o.putArray("tensors");
    for (WrittenFile.Tensor t : f.contents) {
      ObjectNode e = tensors.addObject();
      e.put("key", t.key);
      e.put("dtype", t.dtype);
      ArrayNode shape = e.putArray("shape");
      for (long d : t.shape) {
        shape.add(d);
      }
      ArrayNode src = e.putArray("sources");
      t.sources.forEach(src::add);
    }
    return o;
  }

  public static WrittenFile fromJson(JsonNode o) {
    List<WrittenFile.Tensor> tensors = new ArrayList<>();
    for (JsonNode e : o.path("tensors")) {
      long[] shape = new long[e.path("shape").size()];
      for (int i = 0; i < shape.length; i++) {
        shape[i] = e.path("shape").get(i).asLong();
      }
      List<String> sources = new ArrayList<>();
      e.path("sources").forEach(s -> sources.add(s.asText()));
      tensors.add(new WrittenFile.Tensor(e.path("key").asText(), e.path("dtype").asText(), shape, sources));
    }
    return new WrittenFile(o.path("path").asText(), o.path("size").asLong(), o.path("tensor_bytes").asLong(),
        o.path("sha256").asText(), tensors, false);
  }
}
