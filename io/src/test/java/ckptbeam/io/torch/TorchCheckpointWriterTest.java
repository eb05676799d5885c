package ckptbeam.io.torch;

import ckptbeam.io.Bytes;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.DigestingChannel;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import java.io.ByteArrayOutputStream;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TorchCheckpointWriterTest {
  @TempDir Path dir;

  private static TorchCheckpointWriter.Tensor bf16(long[] shape, float... values) {
    return new TorchCheckpointWriter.Tensor(
        new TensorSpec("t", DType.BF16, Shape.of(shape), Bytes.of(Bytes.bf16(values))));
  }

  private Path write(Object root) throws IOException {
    Path f = dir.resolve("out.pt");
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING)) {
      TorchCheckpointWriter.write(ch, "archive", root);
    }
    return f;
  }

  @Test
  void standardZipReadersSeeAlignedStoredRecordsWithCorrectCrcs() throws IOException {
    Map<String, Object> model = new LinkedHashMap<>();
    model.put("a.weight", bf16(new long[] {3}, 1, 2, 3));
    model.put("b.bias", new TorchCheckpointWriter.Tensor(
        new TensorSpec("b", DType.F32, Shape.of(2, 1), Bytes.of(Bytes.f32(7, 8)))));
    model.put("empty", bf16(new long[] {0}));
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("model", model);
    root.put("checkpoint_version", 3.0);
    root.put("iteration", 1);
    Path f = write(root);

    List<String> names = new ArrayList<>();
    Map<String, Long> sizes = new LinkedHashMap<>();
    try (ZipFile zip = new ZipFile(f.toFile())) {
      for (ZipEntry e : Collections.list(zip.entries())) {
        names.add(e.getName());
        sizes.put(e.getName(), e.getSize());
        assertEquals(ZipEntry.STORED, e.getMethod());
        byte[] data = zip.getInputStream(e).readAllBytes();
        CRC32 crc = new CRC32();
        crc.update(data);
        assertEquals(crc.getValue(), e.getCrc(), e.getName());
      }
      assertArrayEquals(Bytes.f32(7, 8), zip.getInputStream(zip.getEntry("archive/data/1")).readAllBytes());
      assertEquals("3\n", new String(zip.getInputStream(zip.getEntry("archive/version")).readAllBytes()));
    }
    assertEquals(List.of("archive/data.pkl", "archive/byteorder", "archive/data/0", "archive/data/1",
        "archive/data/2", "archive/version"), names);
    // every record's data starts on a 64-byte boundary; a 16-byte data descriptor follows each non-empty record
    ByteBuffer b = ByteBuffer.wrap(Files.readAllBytes(f)).order(ByteOrder.LITTLE_ENDIAN);
    int pos = 0;
    List<String> walked = new ArrayList<>();
    while (b.getInt(pos) == 0x04034b50) {
      int nameLen = b.getShort(pos + 26) & 0xFFFF;
      int extraLen = b.getShort(pos + 28) & 0xFFFF;
      String name = new String(b.array(), pos + 30, nameLen, StandardCharsets.UTF_8);
      int dataStart = pos + 30 + nameLen + extraLen;
      assertEquals(0, dataStart % 64, name + " starts at " + dataStart);
      long size = sizes.get(name);
      pos = dataStart + (int) size + (size > 0 ? 16 : 0);
      walked.add(name);
    }
    assertEquals(names, walked);
  }

  @Test
  void picklesFp8ThroughUntypedStorageAndRebuildTensorV3() throws IOException {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", new TorchCheckpointWriter.Tensor(
        new TensorSpec("w", DType.F8_E4M3, Shape.of(2, 2), Bytes.of(new byte[] {0x38, 0x40, 0, 0x7E}))));
    Path f = write(root);
    try (ZipFile zip = new ZipFile(f.toFile())) {
      String pkl = new String(zip.getInputStream(zip.getEntry("archive/data.pkl")).readAllBytes(),
          StandardCharsets.ISO_8859_1);
      assertTrue(pkl.contains("torch._utils\n_rebuild_tensor_v3\n"), pkl);
      assertTrue(pkl.contains("torch.storage\nUntypedStorage\n"), pkl);
      assertTrue(pkl.contains("torch\nfloat8_e4m3fn\n"), pkl);
    }
  }

  @Test
  void aProducerThatWritesTooLittleFailsTheRecord() {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", new TorchCheckpointWriter.Tensor(
        new TensorSpec("w", DType.BF16, Shape.of(4), Bytes.of(Bytes.bf16(1, 2)))));
    IOException e = assertThrows(IOException.class, () -> write(root));
    assertTrue(e.getMessage().contains("archive/data/0"), e.getMessage());
  }

  @Test
  void torchLayoutIsWhatTorchSaveWritesAndStreams() throws IOException {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", bf16(new long[] {2, 3}, 1, 2, 3, 4, 5, 6));
    root.put("empty", bf16(new long[] {0}));
    Path f = dir.resolve("torch.pt");
    ByteArrayOutputStream stream = new ByteArrayOutputStream();
    DigestingChannel digest = new DigestingChannel(Channels.newChannel(stream));
    TorchCheckpointWriter.write(digest, "archive", root);
    Files.write(f, stream.toByteArray());
    assertEquals(Sha256.of(stream.toByteArray()), digest.sha256());

    ByteBuffer b = ByteBuffer.wrap(stream.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
    // data.pkl: version 0, flags 0x0808, CRC and sizes 0 in the local header, aligned data, a 16-byte descriptor
    assertEquals(0, b.getShort(4));
    assertEquals(0x0808, b.getShort(6));
    assertEquals(0, b.getInt(14));
    assertEquals(0, b.getInt(18));
    int dataStart = 30 + (b.getShort(26) & 0xFFFF) + (b.getShort(28) & 0xFFFF);
    assertEquals(64, dataStart);
    // zip64 end record and locator are always written
    int eocd = b.limit() - 22;
    assertEquals(0x06054b50, b.getInt(eocd));
    assertEquals(0x07064b50, b.getInt(eocd - 20));
    assertEquals(0x06064b50, b.getInt(eocd - 20 - 56));
    try (ZipFile zip = new ZipFile(f.toFile())) {
      assertArrayEquals(Bytes.bf16(1, 2, 3, 4, 5, 6), zip.getInputStream(zip.getEntry("archive/data/0")).readAllBytes());
      assertEquals(0, zip.getEntry("archive/data/1").getSize());
    }
    TorchCheckpointReader r = TorchCheckpointReader.open(f.toString());
    PickleReader.TorchTensor w = (PickleReader.TorchTensor) ((Map<?, ?>) r.root()).get("w");
    TensorLocation loc = r.locate("w", w);
    assertEquals(0, loc.offset() % 64);
    try (RangeReader in = CheckpointFiles.open(f.toString())) {
      ByteBuffer data = ByteBuffer.allocate(12);
      in.readFully(loc.offset(), data);
      assertArrayEquals(Bytes.bf16(1, 2, 3, 4, 5, 6), data.array());
    }
  }
}
