package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.annotation.JsonInclude;
import com.fasterxml.jackson.annotation.JsonProperty;
import com.fasterxml.jackson.annotation.JsonPropertyOrder;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonMappingException;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * What an output says about itself, as JSON documents read and written with Jackson's databind: the manifest
 * ({@code ckptbeam-manifest.json}: tool, command, options, the input's identity, the fingerprint, notes, every file)
 * and the progress record a writer leaves per finished file. Fields a later release adds are ignored when read.
 */
public final class OutputRecords {
  private static final ObjectMapper JSON = new ObjectMapper()
      .configure(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES, false);

  private OutputRecords() {}

  /** The manifest of an output. */
  @JsonPropertyOrder({"tool", "version", "command", "options", "input", "fingerprint", "notes", "files"})
  @JsonInclude(JsonInclude.Include.NON_NULL)
  public record Manifest(String tool, String version, String command, TreeMap<String, String> options, Input input,
      String fingerprint, List<String> notes, List<FileEntry> files) implements Serializable {
    /** The same manifest with these notes and files. */
    public Manifest with(List<String> newNotes, List<FileEntry> newFiles) {
      return new Manifest(tool, version, command, options, input, fingerprint, List.copyOf(newNotes),
          List.copyOf(newFiles));
    }

    public List<FileEntry> files() {
      return files == null ? List.of() : files;
    }

    public List<String> notes() {
      return notes == null ? List.of() : notes;
    }
  }

  /** The input folder and the SHA-256 of its small files (config, index, tracker): its identity. */
  @JsonPropertyOrder({"dir", "sha256"})
  public record Input(String dir, LinkedHashMap<String, String> sha256) implements Serializable {}

  /** One written file: size, SHA-256, the bytes of its tensors, and each tensor with the sources it came from. */
  @JsonPropertyOrder({"path", "size", "sha256", "tensor_bytes", "tensors"})
  public record FileEntry(String path, long size, String sha256, @JsonProperty("tensor_bytes") long tensorBytes,
      List<TensorEntry> tensors) implements Serializable {
    public static FileEntry of(WrittenFile f) {
      List<TensorEntry> tensors = new ArrayList<>();
      f.contents.forEach(t -> tensors.add(new TensorEntry(t.key, t.dtype, t.shape, t.sources)));
      return new FileEntry(f.relativePath, f.bytes, f.sha256, f.tensorBytes, tensors);
    }

    public WrittenFile toWrittenFile() {
      List<WrittenFile.Tensor> contents = new ArrayList<>();
      for (TensorEntry t : tensors()) {
        contents.add(new WrittenFile.Tensor(t.key(), t.dtype(), t.shape(), t.sources() == null ? List.of()
            : t.sources()));
      }
      return new WrittenFile(path, size, tensorBytes, sha256, contents, false);
    }

    public List<TensorEntry> tensors() {
      return tensors == null ? List.of() : tensors;
    }
  }

  /** One tensor of a written file. */
  @JsonPropertyOrder({"key", "dtype", "shape", "sources"})
  public record TensorEntry(String key, String dtype, long[] shape, List<String> sources) implements Serializable {}

  /** What every record carries: the fingerprint of the conversion that wrote it. */
  public record Fingerprinted(String fingerprint) {}

  /** A finished file's record, with the fingerprint of the conversion that wrote it. */
  @JsonPropertyOrder({"fingerprint", "file"})
  public record Progress(String fingerprint, FileEntry file) {}

  /** The manifest as the output holds it (indented like Python's {@code json.dump(..., indent=1)}). */
  public static byte[] write(Manifest m) {
    return PythonJson.write(JSON.valueToTree(m), 1);
  }

  public static byte[] write(Progress p) throws IOException {
    return JSON.writeValueAsBytes(p);
  }

  /** A manifest or progress record; a torn or malformed one is an {@link IOException}. */
  public static <T> T read(byte[] json, Class<T> type) throws IOException {
    T value = JSON.readValue(json, type);
    if (value == null) {
      throw new JsonMappingException(null, "empty JSON document");
    }
    return value;
  }

  /** The header of a manifest: every field but notes and files. */
  static Manifest header(String command, Map<String, String> options, String loadDir, Map<String, String> identity,
      String fingerprint) {
    return new Manifest("ckptbeam", ConversionPlanner.VERSION, command, new TreeMap<>(options),
        new Input(loadDir, new LinkedHashMap<>(identity)), fingerprint, null, null);
  }
}
