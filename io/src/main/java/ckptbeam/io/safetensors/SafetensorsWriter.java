package ckptbeam.io.safetensors;

import ckptbeam.io.storage.CountingChannel;
import ckptbeam.io.tensor.TensorSpec;
import com.fasterxml.jackson.core.JsonFactory;
import com.fasterxml.jackson.core.JsonGenerator;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Streams one safetensors file: the header built from the planned tensor list, then each tensor's bytes in order
 * (docs/formats.md §2.3). Tensors are ordered like the reference serializer (dtype descending, then name), so each starts
 * at a multiple of its element size.
 */
public final class SafetensorsWriter {
  /** Metadata every file we write carries; some transformers versions fail without it. */
  public static final Map<String, String> PT_METADATA = Map.of("format", "pt");

  private static final JsonFactory JSON = new JsonFactory();

  private SafetensorsWriter() {}

  /** The order the tensors will be written in. */
  public static List<TensorSpec> fileOrder(List<TensorSpec> tensors) {
    List<TensorSpec> sorted = new ArrayList<>(tensors);
    sorted.sort(Comparator.comparing(TensorSpec::dtype, Comparator.reverseOrder()).thenComparing(TensorSpec::name));
    return sorted;
  }

  /** The complete header, length prefix included, for the tensors in {@link #fileOrder} order. */
  public static byte[] header(List<TensorSpec> ordered, Map<String, String> metadata) throws IOException {
    Set<String> seen = new HashSet<>();
    ByteArrayOutputStream json = new ByteArrayOutputStream();
    try (JsonGenerator g = JSON.createGenerator(json)) {
      g.writeStartObject();
      if (metadata != null && !metadata.isEmpty()) {
        g.writeObjectFieldStart("__metadata__");
        for (Map.Entry<String, String> e : new LinkedHashMap<>(metadata).entrySet()) {
          g.writeStringField(e.getKey(), e.getValue());
        }
        g.writeEndObject();
      }
      long offset = 0;
      for (TensorSpec t : ordered) {
        if (!seen.add(t.name()) || t.name().equals("__metadata__")) {
          throw new IllegalArgumentException("duplicate or reserved tensor name \"" + t.name() + "\"");
        }
        g.writeObjectFieldStart(t.name());
        g.writeStringField("dtype", t.dtype().safetensorsName());
        g.writeArrayFieldStart("shape");
        for (long d : t.shape().dims()) {
          g.writeNumber(d);
        }
        g.writeEndArray();
        long end = offset + t.byteSize();
        g.writeArrayFieldStart("data_offsets");
        g.writeNumber(offset);
        g.writeNumber(end);
        g.writeEndArray();
        g.writeEndObject();
        offset = end;
      }
      g.writeEndObject();
    }
    int n = json.size();
    int padded = (n + 7) / 8 * 8;
    if (padded > SafetensorsHeader.MAX_HEADER_BYTES) {
      throw new IOException("safetensors header of " + padded + " bytes exceeds the format's limit");
    }
    ByteBuffer out = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
    out.putLong(padded);
    out.put(json.toByteArray());
    while (out.hasRemaining()) {
      out.put((byte) ' ');
    }
    return out.array();
  }

  /**
   * Writes the whole file to {@code out}: header, then every tensor's bytes streamed from its producer.
   *
   * @return the number of bytes written
   */
  public static long write(WritableByteChannel out, List<TensorSpec> tensors, Map<String, String> metadata)
      throws IOException {
    List<TensorSpec> ordered = fileOrder(tensors);
    byte[] header = header(ordered, metadata);
    ByteBuffer hb = ByteBuffer.wrap(header);
    while (hb.hasRemaining()) {
      out.write(hb);
    }
    long total = header.length;
    for (TensorSpec t : ordered) {
      CountingChannel sink = new CountingChannel(out, "tensor \"" + t.name() + "\"", t.byteSize(), false);
      t.bytes().writeTo(sink);
      sink.checkComplete();
      total += sink.count();
    }
    return total;
  }
}
