package ckptbeam.io.torch;

import ckptbeam.io.Bytes;
import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.tensor.TensorSpec;
import java.io.ByteArrayOutputStream;
import java.util.Arrays;
import java.util.function.Consumer;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.InputStream;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class TorchCheckpointReaderTest {
  @TempDir Path dir;

  private static byte[] read(TensorLocation loc) throws IOException {
    try (RangeReader r = CheckpointFiles.open(loc.file())) {
      ByteBuffer b = ByteBuffer.allocate((int) loc.byteSize());
      r.readFully(loc.offset(), b);
      return b.array();
    }
  }

  @Test
  void readsWhatTheWriterWrote() throws IOException {
    Map<String, Object> model = new LinkedHashMap<>();
    model.put("a", new TorchCheckpointWriter.Tensor(
        new TensorSpec("a", DType.BF16, Shape.of(2, 2), Bytes.of(Bytes.bf16(1, 2, 3, 4)))));
    model.put("b", new TorchCheckpointWriter.Tensor(
        new TensorSpec("b", DType.F32, Shape.of(3), Bytes.of(Bytes.f32(5, 6, 7)))));
    model.put("q", new TorchCheckpointWriter.Tensor(
        new TensorSpec("q", DType.F8_E4M3, Shape.of(2), Bytes.of(new byte[] {0x38, 0x7E}))));
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("model", model);
    root.put("checkpoint_version", 3.0);
    root.put("iteration", 1);
    Path f = dir.resolve("m.pt");
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      TorchCheckpointWriter.write(ch, "model_optim_rng", root);
    }
    TorchCheckpointReader r = TorchCheckpointReader.open(f.toString());
    assertEquals(3.0, ((Map<?, ?>) r.root()).get("checkpoint_version"));
    assertEquals(1L, ((Map<?, ?>) r.root()).get("iteration"));
    Map<String, PickleReader.TorchTensor> t = r.tensors("model");
    assertEquals(List.of("a", "b", "q"), List.copyOf(t.keySet()));
    TensorLocation a = r.locate("a", t.get("a"));
    assertEquals(DType.BF16, a.dtype());
    assertEquals(Shape.of(2, 2), a.shape());
    assertEquals(0, a.offset() % 64);
    assertArrayEquals(Bytes.bf16(1, 2, 3, 4), read(a));
    assertArrayEquals(Bytes.f32(5, 6, 7), read(r.locate("b", t.get("b"))));
    TensorLocation q = r.locate("q", t.get("q"));
    assertEquals(DType.F8_E4M3, q.dtype());
    assertArrayEquals(new byte[] {0x38, 0x7E}, read(q));
  }

  @Test
  void readsTheGoldenFile() throws IOException {
    Path f = dir.resolve("g.pt");
    try (InputStream in = getClass().getResourceAsStream("/golden-appendix-a.pt")) {
      Files.copy(in, f);
    }
    TorchCheckpointReader r = TorchCheckpointReader.open(f.toString());
    Map<?, ?> root = (Map<?, ?>) r.root();
    PickleReader.TorchTensor w = (PickleReader.TorchTensor) root.get("w");
    assertArrayEquals(Bytes.bf16(1, 2, 3, 4, 5, 6), read(r.locate("w", w)));
  }

  private static byte[] pickle(String latin1) {
    return latin1.getBytes(StandardCharsets.ISO_8859_1);
  }

  @Test
  void refusesGlobalsOutsideTheAllowlistWithoutRunningThem() {
    for (String g : new String[] {"os\nsystem", "builtins\neval", "__builtin__\nexec", "subprocess\nPopen",
        "posix\nsystem", "nt\nsystem", "pickle\nloads"}) {
      CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
          () -> PickleReader.read("x.pt", pickle("\u0080\u0002c" + g + "\nX\u0002\u0000\u0000\u0000ls\u0085R.")));
      assertEquals("ForbiddenGlobal", e.rule(), g);
      assertTrue(e.getMessage().contains("nothing was executed"), e.getMessage());
    }
  }

  @Test
  void malformedPicklesAreErrorsNotCrashes() {
    for (String bad : new String[] {"\u0080\u0002", "\u0080\u0002X\u00ff\u00ff\u00ff\u007fab.", "\u0080\u0002u.",
        "\u0080\u0002h\u0005.", "\u0080\u0002\u0082\u0001.", "\u0080\u0002(K\u0001K\u0002K\u0003u.", "0."}) {
      assertThrows(CheckpointFormatException.class, () -> PickleReader.read("x.pt", pickle(bad)), bad);
    }
  }

  @Test
  void protocol4OpcodesAreRead() throws IOException {
    // {'a': [1, 2.5, 'é']} as CPython's protocol-4 pickler writes it, framed, memoized, short strings
    byte[] p = {(byte) 0x80, 4, (byte) 0x95, 26, 0, 0, 0, 0, 0, 0, 0, '}', (byte) 0x94, (byte) 0x8c, 1, 'a',
        (byte) 0x94, ']', (byte) 0x94, '(', 'K', 1, 'G', 0x40, 0x04, 0, 0, 0, 0, 0, 0, (byte) 0x8c, 2, (byte) 0xc3,
        (byte) 0xa9, (byte) 0x94, 'e', 's', '.'};
    Map<?, ?> m = (Map<?, ?>) PickleReader.read("x", p);
    assertEquals(List.of(1L, 2.5, "é"), m.get("a"));
  }

  @Test
  void damagedZipsAreRefused() throws IOException {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", new TorchCheckpointWriter.Tensor(
        new TensorSpec("w", DType.BF16, Shape.of(64), Bytes.of(new byte[128]))));
    Path f = dir.resolve("ok.pt");
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      TorchCheckpointWriter.write(ch, "archive", root);
    }
    byte[] good = Files.readAllBytes(f);

    Path truncated = dir.resolve("t.pt");
    Files.write(truncated, Arrays.copyOf(good, good.length - 30));
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
        () -> TorchCheckpointReader.open(truncated.toString()));
    assertEquals("InvalidTorchZip", e.rule());

    // a central directory entry claiming a 4 GB record: refused, nothing allocated
    byte[] bomb = good.clone();
    ByteBuffer b = ByteBuffer.wrap(bomb).order(ByteOrder.LITTLE_ENDIAN);
    int cd = b.getInt(bomb.length - 6);
    b.putInt(cd + 20, 0xFFFFFFF0);
    b.putInt(cd + 24, 0xFFFFFFF0);
    Path bombFile = dir.resolve("b.pt");
    Files.write(bombFile, bomb);
    e = assertThrows(CheckpointFormatException.class, () -> TorchCheckpointReader.open(bombFile.toString()));
    assertTrue(e.getMessage().contains("runs past the end"), e.getMessage());

    Path notZip = dir.resolve("n.pt");
    Files.write(notZip, "PYTORCH1 legacy pickle format, long enough".getBytes(StandardCharsets.US_ASCII));
    e = assertThrows(CheckpointFormatException.class, () -> TorchCheckpointReader.open(notZip.toString()));
    assertTrue(e.getMessage().contains("not a torch zip checkpoint"), e.getMessage());
  }

  @Test
  void aStorageKeyWithNoRecordIsNamed() throws IOException {
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", new TorchCheckpointWriter.Tensor(
        new TensorSpec("w", DType.BF16, Shape.of(2), Bytes.of(new byte[4]))));
    Path f = dir.resolve("k.pt");
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      TorchCheckpointWriter.write(ch, "archive", root);
    }
    byte[] bytes = Files.readAllBytes(f);
    String s = new String(bytes, StandardCharsets.ISO_8859_1).replace("archive/data/0", "archive/data/9");
    Files.write(f, s.getBytes(StandardCharsets.ISO_8859_1));
    TorchCheckpointReader r = TorchCheckpointReader.open(f.toString());
    PickleReader.TorchTensor t = (PickleReader.TorchTensor) ((Map<?, ?>) r.root()).get("w");
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class, () -> r.locate("w", t));
    assertEquals("MissingStorage", e.rule());
    assertTrue(e.getMessage().contains("\"w\""), e.getMessage());
  }

  @Test
  void trackerFiles() throws IOException {
    Files.writeString(dir.resolve("latest_checkpointed_iteration.txt"), "1000\n");
    assertEquals("iter_0001000", McoreTracker.iterationDir(dir.toString()));
    Files.writeString(dir.resolve("latest_checkpointed_iteration.txt"), "release");
    assertEquals("release", McoreTracker.iterationDir(dir.toString()));
    Files.writeString(dir.resolve("latest_checkpointed_iteration.txt"), "abc");
    assertThrows(CheckpointFormatException.class, () -> McoreTracker.iterationDir(dir.toString()));
  }

  private Path zip(String name, Consumer<ZipOutputStream> entries) throws IOException {
    Path f = dir.resolve(name);
    try (ZipOutputStream z = new ZipOutputStream(Files.newOutputStream(f))) {
      entries.accept(z);
    }
    return f;
  }

  private static void entry(ZipOutputStream z, String name, byte[] data, boolean stored) {
    try {
      ZipEntry e = new ZipEntry(name);
      if (stored) {
        e.setMethod(ZipEntry.STORED);
        e.setSize(data.length);
        CRC32 crc = new CRC32();
        crc.update(data);
        e.setCrc(crc.getValue());
      }
      z.putNextEntry(e);
      z.write(data);
      z.closeEntry();
    } catch (IOException ex) {
      throw new IllegalStateException(ex);
    }
  }

  /** The pickle of golden file A: {'w': bf16 [2, 3] in storage "0"}. */
  private static byte[] goldenPickle() throws IOException {
    try (InputStream in = TorchCheckpointReaderTest.class.getResourceAsStream("/golden-appendix-a.pt")) {
      return Arrays.copyOfRange(in.readAllBytes(), 0x40, 0x40 + 0xa8);
    }
  }

  @Test
  void aCompressedStorageRecordIsRefusedButACompressedPickleIsRead() throws IOException {
    byte[] pkl = goldenPickle();
    Path f = zip("deflated.pt", z -> {
      entry(z, "archive/data.pkl", pkl, false);
      entry(z, "archive/data/0", Bytes.bf16(1, 2, 3, 4, 5, 6), false);
      entry(z, "archive/version", "3\n".getBytes(StandardCharsets.US_ASCII), true);
    });
    TorchCheckpointReader r = TorchCheckpointReader.open(f.toString());
    PickleReader.TorchTensor w = (PickleReader.TorchTensor) ((Map<?, ?>) r.root()).get("w");
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class, () -> r.locate("w", w));
    assertEquals("CompressedStorage", e.rule());
  }

  @Test
  void torchScriptArchivesAndEntriesOutsideTheFolderAreRefused() throws IOException {
    byte[] pkl = goldenPickle();
    Path script = zip("script.pt", z -> {
      entry(z, "archive/data.pkl", pkl, true);
      entry(z, "archive/constants.pkl", pkl, true);
    });
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
        () -> TorchCheckpointReader.open(script.toString()));
    assertTrue(e.getMessage().contains("TorchScript"), e.getMessage());
    Path outside = zip("outside.pt", z -> {
      entry(z, "archive/data.pkl", pkl, true);
      entry(z, "other/data/0", new byte[12], true);
    });
    e = assertThrows(CheckpointFormatException.class, () -> TorchCheckpointReader.open(outside.toString()));
    assertTrue(e.getMessage().contains("outside the archive folder"), e.getMessage());
  }

  @Test
  void aZip64LocatorPointingOutsideTheFileIsRefused() throws IOException {
    Path f = dir.resolve("z64.pt");
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("w", new TorchCheckpointWriter.Tensor(new TensorSpec("w", DType.U8, Shape.of(4), Bytes.of(new byte[4]))));
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      TorchCheckpointWriter.write(ch, "archive", root);
    }
    byte[] b = Files.readAllBytes(f);
    // insert a zip64 locator right before the EOCD, pointing far past the end
    ByteBuffer loc = ByteBuffer.allocate(20).order(ByteOrder.LITTLE_ENDIAN);
    loc.putInt(0x07064b50).putInt(0).putLong(Long.MAX_VALUE / 2).putInt(1);
    byte[] out = new byte[b.length + 20];
    System.arraycopy(b, 0, out, 0, b.length - 22);
    System.arraycopy(loc.array(), 0, out, b.length - 22, 20);
    System.arraycopy(b, b.length - 22, out, b.length - 2, 22);
    Files.write(f, out);
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
        () -> TorchCheckpointReader.open(f.toString()));
    assertTrue(e.getMessage().contains("zip64 end record offset"), e.getMessage());
  }

  @Test
  void deeplyNestedAndOversizedPicklesAreHandled() throws IOException {
    // 200 000 nested lists: no recursion in the reader, so no stack overflow
    ByteArrayOutputStream p = new ByteArrayOutputStream();
    p.write(0x80);
    p.write(2);
    for (int i = 0; i < 200_000; i++) {
      p.write(']');
    }
    for (int i = 0; i < 199_999; i++) {
      p.write('a');
    }
    p.write('.');
    Object root = PickleReader.read("deep.pkl", p.toByteArray());
    assertTrue(root instanceof List);
    // a pickle record larger than the reader's limit is refused before it is read
    byte[] pkl = goldenPickle();
    Path f = zip("big.pt", z -> entry(z, "archive/data.pkl", pkl, true));
    try (RangeReader in = CheckpointFiles.open(f.toString())) {
      ZipDirectory zd = ZipDirectory.read(f.toString(), in);
      CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
          () -> zd.readSmall(in, "data.pkl", 100));
      assertTrue(e.getMessage().contains("larger than the 100 allowed"), e.getMessage());
    }
  }
}
