package ckptbeam.io.safetensors;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonParseException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
import com.fasterxml.jackson.core.StreamReadFeature;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The parsed and validated header of one safetensors file. Validation applies every rule of the reference reader
 * (docs/formats.md §2.4) plus the duplicate-name rule of the format's README; each failure is a
 * {@link CheckpointFormatException} naming the file and the rule.
 */
public final class SafetensorsHeader {
  /** The reference reader's limit on the header length N (decimal, not MiB). */
  public static final long MAX_HEADER_BYTES = 100_000_000L;

  private static final JsonFactory JSON = JsonFactory.builder()
      .enable(StreamReadFeature.STRICT_DUPLICATE_DETECTION)
      .build();

  private final String file;
  private final long dataStart;
  private final Map<String, String> metadata;
  private final List<TensorLocation> tensors;
  private final Map<String, TensorLocation> byName;

  private SafetensorsHeader(String file, long dataStart, Map<String, String> metadata, List<TensorLocation> tensors) {
    this.file = file;
    this.dataStart = dataStart;
    this.metadata = Collections.unmodifiableMap(metadata);
    this.tensors = Collections.unmodifiableList(tensors);
    Map<String, TensorLocation> m = new LinkedHashMap<>();
    for (TensorLocation t : tensors) {
      m.put(t.name(), t);
    }
    this.byName = Collections.unmodifiableMap(m);
  }

  /** Reads and validates the header of {@code file}; only the first 8 + N bytes are read. */
  public static SafetensorsHeader read(String file) throws IOException {
    try (RangeReader reader = CheckpointFiles.open(file)) {
      return read(file, reader);
    }
  }

  public static SafetensorsHeader read(String file, RangeReader reader) throws IOException {
    long fileSize = reader.size();
    if (fileSize < 8) {
      throw new CheckpointFormatException(file, "HeaderTooSmall",
          "the file is " + fileSize + " bytes, shorter than the 8-byte header length");
    }
    ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
    reader.readFully(0, lenBuf);
    long n = lenBuf.getLong(0);
    if (n < 0 || n > MAX_HEADER_BYTES) {
      throw new CheckpointFormatException(file, "HeaderTooLarge",
          "header length " + Long.toUnsignedString(n) + " exceeds the limit of " + MAX_HEADER_BYTES + " bytes");
    }
    if (8 + n > fileSize) {
      throw new CheckpointFormatException(file, "InvalidHeaderLength",
          "header length " + n + " runs past the end of the " + fileSize + "-byte file");
    }
    ByteBuffer header = ByteBuffer.allocate((int) n);
    reader.readFully(8, header);
    return parse(file, header.array(), fileSize);
  }

  /** Validates a header given its JSON bytes and the size of the whole file. */
  static SafetensorsHeader parse(String file, byte[] json, long fileSize) throws IOException {
    String text;
    try {
      text = StandardCharsets.UTF_8.newDecoder()
          .onMalformedInput(CodingErrorAction.REPORT)
          .onUnmappableCharacter(CodingErrorAction.REPORT)
          .decode(ByteBuffer.wrap(json)).toString();
    } catch (CharacterCodingException e) {
      throw new CheckpointFormatException(file, "InvalidHeader", "the header is not valid UTF-8");
    }
    long dataStart = 8L + json.length;
    Map<String, String> metadata = new LinkedHashMap<>();
    List<RawEntry> entries = new ArrayList<>();
    try (JsonParser p = JSON.createParser(text)) {
      if (p.nextToken() != JsonToken.START_OBJECT) {
        throw invalid(file, "the header is not a JSON object");
      }
      while (p.nextToken() == JsonToken.FIELD_NAME) {
        String name = p.getCurrentName();
        p.nextToken();
        if (name.equals("__metadata__")) {
          readMetadata(file, p, metadata);
        } else {
          entries.add(readEntry(file, name, p));
        }
      }
      if (p.nextToken() != null) {
        throw invalid(file, "unexpected content after the header object");
      }
    } catch (JsonParseException e) {
      throw invalid(file, e.getOriginalMessage());
    }
    return validate(file, dataStart, fileSize, metadata, entries);
  }

  private static void readMetadata(String file, JsonParser p, Map<String, String> metadata) throws IOException {
    if (p.currentToken() == JsonToken.VALUE_NULL) {
      return;
    }
    if (p.currentToken() != JsonToken.START_OBJECT) {
      throw invalid(file, "__metadata__ is not an object");
    }
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String key = p.getCurrentName();
      if (p.nextToken() != JsonToken.VALUE_STRING) {
        throw invalid(file, "__metadata__ value of \"" + key + "\" is not a string");
      }
      metadata.put(key, p.getText());
    }
  }

  private static RawEntry readEntry(String file, String name, JsonParser p) throws IOException {
    if (p.currentToken() != JsonToken.START_OBJECT) {
      throw invalid(file, "tensor \"" + name + "\" is not an object");
    }
    String dtype = null;
    long[] shape = null;
    long[] offsets = null;
    while (p.nextToken() == JsonToken.FIELD_NAME) {
      String field = p.getCurrentName();
      p.nextToken();
      switch (field) {
        case "dtype":
          if (p.currentToken() != JsonToken.VALUE_STRING) {
            throw invalid(file, "tensor \"" + name + "\": dtype is not a string");
          }
          dtype = p.getText();
          break;
        case "shape":
          shape = readLongs(file, name, "shape", p);
          break;
        case "data_offsets":
          offsets = readLongs(file, name, "data_offsets", p);
          if (offsets.length != 2) {
            throw invalid(file, "tensor \"" + name + "\": data_offsets must have 2 entries, not " + offsets.length);
          }
          break;
        default:
          throw invalid(file, "tensor \"" + name + "\": unknown field \"" + field + "\"");
      }
    }
    if (dtype == null || shape == null || offsets == null) {
      throw invalid(file, "tensor \"" + name + "\" lacks " + (dtype == null ? "dtype" : shape == null ? "shape" : "data_offsets"));
    }
    return new RawEntry(name, dtype, shape, offsets[0], offsets[1]);
  }

  private static long[] readLongs(String file, String name, String field, JsonParser p) throws IOException {
    if (p.currentToken() != JsonToken.START_ARRAY) {
      throw invalid(file, "tensor \"" + name + "\": " + field + " is not an array");
    }
    List<Long> values = new ArrayList<>();
    while (p.nextToken() != JsonToken.END_ARRAY) {
      if (p.currentToken() != JsonToken.VALUE_NUMBER_INT) {
        throw invalid(file, "tensor \"" + name + "\": " + field + " holds a non-integer value " + p.getText());
      }
      if (p.getNumberType() == JsonParser.NumberType.BIG_INTEGER || p.getLongValue() < 0) {
        throw invalid(file, "tensor \"" + name + "\": " + field + " value " + p.getText()
            + " is not an integer in [0, 2^63)");
      }
      values.add(p.getLongValue());
    }
    return values.stream().mapToLong(Long::longValue).toArray();
  }

  private static SafetensorsHeader validate(String file, long dataStart, long fileSize, Map<String, String> metadata,
      List<RawEntry> entries) throws CheckpointFormatException {
    List<RawEntry> sorted = new ArrayList<>(entries);
    sorted.sort(Comparator.comparingLong((RawEntry e) -> e.begin).thenComparingLong(e -> e.end));
    long expectedBegin = 0;
    List<TensorLocation> tensors = new ArrayList<>();
    for (RawEntry e : sorted) {
      if (e.begin != expectedBegin || e.end < e.begin) {
        throw new CheckpointFormatException(file, "InvalidOffset", "tensor \"" + e.name + "\" has data_offsets ["
            + e.begin + ", " + e.end + "] but the previous tensor ends at " + expectedBegin
            + " (tensors must tile the byte buffer without holes or overlaps)");
      }
      DType dtype;
      try {
        dtype = DType.fromSafetensors(e.dtype);
      } catch (IllegalArgumentException ex) {
        throw new CheckpointFormatException(file, "UnknownDtype", "tensor \"" + e.name + "\" has " + ex.getMessage());
      }
      Shape shape;
      long bytes;
      try {
        shape = Shape.of(e.shape);
        bytes = shape.byteSize(dtype);
      } catch (ArithmeticException ex) {
        throw new CheckpointFormatException(file, "ValidationOverflow",
            "tensor \"" + e.name + "\": shape " + Arrays.toString(e.shape) + " overflows");
      }
      if (e.end - e.begin != bytes) {
        throw new CheckpointFormatException(file, "TensorInvalidInfo", "tensor \"" + e.name + "\": " + dtype
            + shape + " needs " + bytes + " bytes but data_offsets span " + (e.end - e.begin));
      }
      expectedBegin = e.end;
      tensors.add(new TensorLocation(e.name, file, dtype, shape, Math.addExact(dataStart, e.begin)));
    }
    if (dataStart + expectedBegin != fileSize) {
      throw new CheckpointFormatException(file, "MetadataIncompleteBuffer", "header and tensors account for "
          + (dataStart + expectedBegin) + " bytes but the file has " + fileSize);
    }
    // Keep the header's own order for callers; offsets were checked on the sorted copy.
    Map<String, TensorLocation> byName = new LinkedHashMap<>();
    for (TensorLocation t : tensors) {
      byName.put(t.name(), t);
    }
    List<TensorLocation> inHeaderOrder = new ArrayList<>();
    for (RawEntry e : entries) {
      inHeaderOrder.add(byName.get(e.name));
    }
    return new SafetensorsHeader(file, dataStart, metadata, inHeaderOrder);
  }

  private static CheckpointFormatException invalid(String file, String detail) {
    return new CheckpointFormatException(file, "InvalidHeaderDeserialization", detail);
  }

  public String file() {
    return file;
  }

  /** File offset of the byte buffer (8 + N). */
  public long dataStart() {
    return dataStart;
  }

  public Map<String, String> metadata() {
    return metadata;
  }

  /** The tensors in header order. */
  public List<TensorLocation> tensors() {
    return tensors;
  }

  /** The tensor of that name, or null. */
  public TensorLocation tensor(String name) {
    return byName.get(name);
  }

  private static final class RawEntry {
    final String name;
    final String dtype;
    final long[] shape;
    final long begin;
    final long end;

    RawEntry(String name, String dtype, long[] shape, long begin, long end) {
      this.name = name;
      this.dtype = dtype;
      this.shape = shape;
      this.begin = begin;
      this.end = end;
    }
  }
}
