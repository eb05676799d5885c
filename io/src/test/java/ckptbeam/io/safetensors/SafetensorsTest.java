package ckptbeam.io.safetensors;

import ckptbeam.io.Bytes;
import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

public class SafetensorsTest {
  @TempDir Path dir;

  /** docs/formats.md §2.5: a = F32 [1, 2], b = BF16 [[1,2],[3,4]], metadata {"format":"pt"}; 168 bytes. */
  public static byte[] workedExample() {
    String json = "{\"__metadata__\":{\"format\":\"pt\"},\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
        + "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[8,16]}}";
    assertEquals(142, json.length());
    ByteBuffer b = ByteBuffer.allocate(168).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(144).put(json.getBytes(StandardCharsets.US_ASCII)).put((byte) ' ').put((byte) ' ');
    b.put(new byte[] {0, 0, (byte) 0x80, 0x3f, 0, 0, 0, 0x40});
    b.put(new byte[] {(byte) 0x80, 0x3f, 0, 0x40, 0x40, 0x40, (byte) 0x80, 0x40});
    return b.array();
  }

  @Test
  void writerReproducesTheWorkedExampleByteForByte() throws IOException {
    // given in the "wrong" order: the writer sorts F32 before BF16 like the reference serializer
    List<TensorSpec> tensors = List.of(
        new TensorSpec("b", DType.BF16, Shape.of(2, 2), Bytes.of(Bytes.bf16(1, 2, 3, 4))),
        new TensorSpec("a", DType.F32, Shape.of(2), Bytes.of(Bytes.f32(1, 2))));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    long n = SafetensorsWriter.write(Channels.newChannel(out), tensors, SafetensorsWriter.PT_METADATA);
    assertEquals(168, n);
    assertArrayEquals(workedExample(), out.toByteArray());
  }

  @Test
  void readerExposesEachTensorAsAByteRange() throws IOException {
    Path f = dir.resolve("x.safetensors");
    Files.write(f, workedExample());
    SafetensorsHeader h = SafetensorsHeader.read(f.toString());
    assertEquals(Map.of("format", "pt"), h.metadata());
    assertEquals(152, h.dataStart());
    TensorLocation a = h.tensor("a");
    TensorLocation b = h.tensor("b");
    assertEquals(DType.F32, a.dtype());
    assertEquals(Shape.of(2), a.shape());
    assertEquals(152, a.offset());
    assertEquals(160, b.offset());
    assertEquals(Shape.of(2, 2), b.shape());
    try (RangeReader r = CheckpointFiles.open(f.toString())) {
      ByteBuffer buf = ByteBuffer.allocate(8);
      r.readFully(b.offset(), buf);
      assertArrayEquals(Bytes.bf16(1, 2, 3, 4), buf.array());
    }
  }

  @Test
  void producerWritingTheWrongLengthIsCaught() {
    List<TensorSpec> tensors = List.of(new TensorSpec("a", DType.F32, Shape.of(2), Bytes.of(Bytes.f32(1))));
    IOException e = assertThrows(IOException.class,
        () -> SafetensorsWriter.write(Channels.newChannel(new ByteArrayOutputStream()), tensors, Map.of()));
    assertTrue(e.getMessage().contains("\"a\""), e.getMessage());
  }

  // ---- one bad file per header rule (docs/formats.md §2.4) ----

  private CheckpointFormatException bad(byte[] file) throws IOException {
    Path f = dir.resolve("bad.safetensors");
    Files.write(f, file);
    CheckpointFormatException e =
        assertThrows(CheckpointFormatException.class, () -> SafetensorsHeader.read(f.toString()));
    assertTrue(e.getMessage().startsWith(f.toString() + ": "), e.getMessage());
    return e;
  }

  private static byte[] file(String json, int dataBytes) {
    byte[] j = json.getBytes(StandardCharsets.UTF_8);
    ByteBuffer b = ByteBuffer.allocate(8 + j.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
    b.putLong(j.length).put(j);
    return b.array();
  }

  @Test
  void tooSmall() throws IOException {
    assertEquals("HeaderTooSmall", bad(new byte[5]).rule());
  }

  @Test
  void headerLengthOverLimit() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(100_000_001L);
    assertEquals("HeaderTooLarge", bad(b.array()).rule());
    ByteBuffer neg = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1L);
    assertEquals("HeaderTooLarge", bad(neg.array()).rule());
  }

  @Test
  void headerLengthPastEndOfFile() throws IOException {
    ByteBuffer b = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(100);
    assertEquals("InvalidHeaderLength", bad(b.array()).rule());
  }

  @Test
  void notUtf8() throws IOException {
    byte[] f = file("{\"a\":1}", 0);
    f[9] = (byte) 0xC3; // a lone lead byte
    f[10] = (byte) 0x28;
    assertEquals("InvalidHeader", bad(f).rule());
  }

  @Test
  void notJson() throws IOException {
    assertEquals("InvalidHeaderDeserialization", bad(file("{\"a\":", 0)).rule());
    assertEquals("InvalidHeaderDeserialization", bad(file("[1,2]", 0)).rule());
  }

  @Test
  void wrongEntryShape() throws IOException {
    assertEquals("InvalidHeaderDeserialization",
        bad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8)).rule());
    assertEquals("InvalidHeaderDeserialization",
        bad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8)).rule());
    assertEquals("InvalidHeaderDeserialization",
        bad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[2.5],\"data_offsets\":[0,8]}}", 8)).rule());
    assertEquals("InvalidHeaderDeserialization",
        bad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[NaN],\"data_offsets\":[0,8]}}", 8)).rule());
    assertEquals("InvalidHeaderDeserialization",
        bad(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[99999999999999999999],\"data_offsets\":[0,8]}}", 8)).rule());
  }

  @Test
  void metadataValuesMustBeStrings() throws IOException {
    assertEquals("InvalidHeaderDeserialization", bad(file("{\"__metadata__\":{\"format\":1}}", 0)).rule());
  }

  @Test
  void duplicateTensorNames() throws IOException {
    String json = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        + "\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}";
    CheckpointFormatException e = bad(file(json, 2));
    assertEquals("InvalidHeaderDeserialization", e.rule());
    assertTrue(e.getMessage().contains("Duplicate field 'a'"), e.getMessage());
  }

  @Test
  void unknownDtype() throws IOException {
    assertEquals("UnknownDtype", bad(file("{\"a\":{\"dtype\":\"Q7\",\"shape\":[1],\"data_offsets\":[0,1]}}", 1)).rule());
  }

  @Test
  void holesOverlapsAndGapsAtTheStart() throws IOException {
    String gapAtStart = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[1,2]}}";
    assertEquals("InvalidOffset", bad(file(gapAtStart, 2)).rule());
    String hole = "{\"a\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]},"
        + "\"b\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[2,3]}}";
    assertEquals("InvalidOffset", bad(file(hole, 3)).rule());
    String overlap = "{\"a\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]},"
        + "\"b\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[1,3]}}";
    assertEquals("InvalidOffset", bad(file(overlap, 3)).rule());
    String backwards = "{\"a\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,0]},"
        + "\"b\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[0,-1]}}";
    bad(file(backwards, 0));
  }

  @Test
  void shapeTimesDtypeMustEqualByteLength() throws IOException {
    CheckpointFormatException e = bad(file("{\"w\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,6]}}", 6));
    assertEquals("TensorInvalidInfo", e.rule());
    assertTrue(e.getMessage().contains("\"w\""), e.getMessage());
  }

  @Test
  void overflowingShape() throws IOException {
    String json = "{\"w\":{\"dtype\":\"BF16\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}";
    assertEquals("ValidationOverflow", bad(file(json, 8)).rule());
  }

  @Test
  void trailingOrMissingBytes() throws IOException {
    String json = "{\"w\":{\"dtype\":\"U8\",\"shape\":[2],\"data_offsets\":[0,2]}}";
    assertEquals("MetadataIncompleteBuffer", bad(file(json, 3)).rule());
    assertEquals("MetadataIncompleteBuffer", bad(file(json, 1)).rule());
  }

  @Test
  void acceptsZeroSizedTensorsAndEmptyFiles() throws IOException {
    Path f = dir.resolve("ok.safetensors");
    Files.write(f, file("{\"z\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", 0));
    assertEquals(Shape.of(0, 3), SafetensorsHeader.read(f.toString()).tensor("z").shape());
  }
}
