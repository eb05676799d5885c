package ckptbeam.io.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.storage.CountingChannel;
import ckptbeam.io.storage.FileRangeSink;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.storage.StagedOutput;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.function.Consumer;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class TensorAssemblerTest {
  @TempDir Path dir;

  /** Two sources in one file, at unaligned offsets, with random bytes. */
  private Map<String, TensorLocation> sources(DType dt, long[][] shapes, Map<String, byte[]> content)
      throws IOException {
    SplittableRandom r = new SplittableRandom(11);
    Map<String, TensorLocation> out = new HashMap<>();
    ByteArrayOutputStream file = new ByteArrayOutputStream();
    file.write(new byte[13]); // an odd prefix: offsets must be honoured exactly
    Path f = dir.resolve("src.bin");
    for (int i = 0; i < shapes.length; i++) {
      Shape s = Shape.of(shapes[i]);
      byte[] data = new byte[(int) s.byteSize(dt)];
      r.nextBytes(data);
      String name = "s" + i;
      out.put(name, new TensorLocation(name, f.toString(), dt, s, file.size()));
      content.put(name, data);
      file.write(data);
    }
    Files.write(f, file.toByteArray());
    return out;
  }

  /** The obvious definition: element (row, col) of a band is taken from its slice. */
  private static byte[] naive(AssembledTensor t, Map<String, TensorLocation> locs, Map<String, byte[]> content, int es) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    for (Band b : t.bands()) {
      for (long row = 0; row < b.height(); row++) {
        for (SourceSlice s : b.slices()) {
          long cols = locs.get(s.source()).shape().cols();
          byte[] src = content.get(s.source());
          for (long c = 0; c < s.outputWidth(); c++) {
            long sr = s.isTransposed() ? s.rowStart() + c : s.rowStart() + row;
            long sc = s.isTransposed() ? s.colStart() + row : s.colStart() + c;
            out.write(src, (int) ((sr * cols + sc) * es), es);
          }
        }
      }
    }
    return out.toByteArray();
  }

  private static byte[] assemble(AssembledTensor t, Map<String, TensorLocation> locs, int buffer) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (TensorAssembler a = new TensorAssembler(buffer)) {
      a.write(t, locs, Channels.newChannel(out));
    }
    return out.toByteArray();
  }

  @ParameterizedTest
  @ValueSource(ints = {64, 100, 256, 4096, 1 << 20})
  void randomCompositionsMatchTheNaiveDefinition(int buffer) throws IOException {
    for (DType dt : new DType[] {DType.BF16, DType.F32, DType.U8}) {
      Map<String, byte[]> content = new HashMap<>();
      Map<String, TensorLocation> locs = sources(dt, new long[][] {{37, 23}, {23, 41}, {50}}, content);
      SplittableRandom r = new SplittableRandom(buffer * 31L + dt.ordinal());
      for (int trial = 0; trial < 40; trial++) {
        List<Band> bands = new ArrayList<>();
        long width = 1 + r.nextInt(30);
        long total = 0;
        for (int b = 0; b < 1 + r.nextInt(3); b++) {
          long height = 1 + r.nextInt(20);
          List<SourceSlice> slices = new ArrayList<>();
          long w = 0;
          while (w < width) {
            long pw = Math.min(width - w, 1 + r.nextInt(12));
            slices.add(randomSlice(r, locs, height, pw));
            w += pw;
          }
          bands.add(new Band(slices));
          total += height * width;
        }
        AssembledTensor t = new AssembledTensor("t", Shape.of(total), bands);
        assertArrayEquals(naive(t, locs, content, dt.size()), assemble(t, locs, buffer), "trial " + trial);
      }
    }
  }

  /** A random slice of output size height x width that fits one of the sources. */
  private static SourceSlice randomSlice(SplittableRandom r, Map<String, TensorLocation> locs, long height, long width) {
    while (true) {
      String name = "s" + r.nextInt(3);
      Shape s = locs.get(name).shape();
      boolean t = r.nextBoolean();
      long rows = t ? width : height;
      long cols = t ? height : width;
      if (rows > s.rows() || cols > s.cols()) {
        continue;
      }
      long r0 = r.nextLong(s.rows() - rows + 1);
      long c0 = r.nextLong(s.cols() - cols + 1);
      return new SourceSlice(name, r0, rows, c0, cols, t);
    }
  }

  @Test
  void wholeTransposeAndRowSlices() throws IOException {
    Map<String, byte[]> content = new HashMap<>();
    Map<String, TensorLocation> locs = sources(DType.BF16, new long[][] {{6, 4}, {3, 4}}, content);
    AssembledTensor t = new AssembledTensor("w1", Shape.of(4, 9), List.of(
        Band.of(SourceSlice.whole("s0", 6, 4).transposed(), SourceSlice.whole("s1", 3, 4).transposed())));
    for (int buffer : new int[] {64, 4096}) {
      assertArrayEquals(naive(t, locs, content, 2), assemble(t, locs, buffer));
    }
  }

  @Test
  void errorsNameTheTargetAndTheSource() throws IOException {
    Map<String, byte[]> content = new HashMap<>();
    Map<String, TensorLocation> locs = sources(DType.BF16, new long[][] {{6, 4}}, content);
    AssembledTensor missing = new AssembledTensor("k", Shape.of(4), List.of(Band.of(SourceSlice.whole("nope", 4, 1))));
    IOException e = assertThrows(IOException.class, () -> assemble(missing, locs, 64));
    assertTrue(e.getMessage().contains("k: source tensor \"nope\""), e.getMessage());
    AssembledTensor tooBig = new AssembledTensor("k", Shape.of(7, 4), List.of(Band.of(SourceSlice.whole("s0", 7, 4))));
    e = assertThrows(IOException.class, () -> assemble(tooBig, locs, 64));
    assertTrue(e.getMessage().contains("\"s0\" has shape [6, 4]"), e.getMessage());
  }

  /** Records the ranges it is handed and copies them (without a kernel copy) into a byte array. */
  private static final class RecordingSink implements FileRangeSink {
    final ByteArrayOutputStream bytes = new ByteArrayOutputStream();
    final List<Long> rangeLengths = new ArrayList<>();

    @Override
    public boolean takesFileRanges() {
      return true;
    }

    @Override
    public void appendFileRange(RangeReader source, long position, long count, Consumer<ByteBuffer> observer)
        throws IOException {
      ByteBuffer b = ByteBuffer.allocate((int) count);
      source.readFully(position, b);
      b.flip();
      if (observer != null) {
        observer.accept(b.duplicate());
      }
      bytes.write(b.array(), 0, b.limit());
      rangeLengths.add(count);
    }

    @Override
    public int write(ByteBuffer src) {
      int n = src.remaining();
      byte[] b = new byte[n];
      src.get(b);
      bytes.write(b, 0, n);
      return n;
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }

  @Test
  void contiguousRangesOfAMebibyteOrMoreAreHandedToASinkThatCopiesFileRanges() throws IOException {
    Map<String, byte[]> content = new HashMap<>();
    // s0: 1 MiB + 2 rows of bf16; s1: small
    Map<String, TensorLocation> locs = sources(DType.BF16, new long[][] {{1026, 512}, {4, 512}}, content);
    AssembledTensor whole = new AssembledTensor("big", Shape.of(1026, 512), List.of(
        Band.of(SourceSlice.whole("s0", 1026, 512))));
    AssembledTensor lowerRows = new AssembledTensor("rows", Shape.of(1025, 512), List.of(
        Band.of(new SourceSlice("s0", 1, 1025, 0, 512, false))));
    AssembledTensor small = new AssembledTensor("small", Shape.of(4, 512), List.of(
        Band.of(SourceSlice.whole("s1", 4, 512))));
    AssembledTensor columns = new AssembledTensor("cols", Shape.of(1026, 256), List.of(
        Band.of(new SourceSlice("s0", 0, 1026, 256, 256, false))));
    RecordingSink sink = new RecordingSink();
    ByteArrayOutputStream expected = new ByteArrayOutputStream();
    try (TensorAssembler a = new TensorAssembler()) {
      for (AssembledTensor t : List.of(whole, lowerRows, small, columns)) {
        a.write(t, locs, sink);
        expected.write(naive(t, locs, content, 2));
      }
    }
    assertArrayEquals(expected.toByteArray(), sink.bytes.toByteArray());
    assertEquals(List.of(1026L * 1024, 1025L * 1024), sink.rangeLengths,
        "only the two whole-row ranges of at least 1 MiB are file ranges; the small and the column slice are not");
  }

  /**
   * Pieces of one window side by side (the gate and up halves of a grouped weight1 that a resharding keeps together)
   * are read as that window: a full-width one is one contiguous range, a file range for a sink that takes them.
   */
  @Test
  void neighbouringPiecesOfOneWindowAreReadAsOne() throws IOException {
    Map<String, byte[]> content = new HashMap<>();
    Map<String, TensorLocation> locs = sources(DType.BF16, new long[][] {{1026, 512}, {4, 512}}, content);
    SourceSlice left = new SourceSlice("s0", 0, 1026, 0, 200, false);
    SourceSlice right = new SourceSlice("s0", 0, 1026, 200, 312, false);
    assertEquals(List.of(SourceSlice.whole("s0", 1026, 512).toString()),
        Band.of(left, right).coalesced().slices().stream().map(SourceSlice::toString).toList());
    Band notJoined = Band.of(left, new SourceSlice("s0", 0, 1026, 300, 212, false));
    assertEquals(2, notJoined.coalesced().slices().size(), "a gap between the pieces");
    SourceSlice other = new SourceSlice("s1", 0, 4, 0, 512, false);
    assertEquals(2, Band.of(new SourceSlice("s0", 0, 4, 0, 200, false), new SourceSlice("s1", 0, 4, 200, 312,
        false)).coalesced().slices().size(), "another source");
    assertEquals(other.toString(), Band.of(other).coalesced().slices().get(0).toString());
    AssembledTensor halves = new AssembledTensor("halves", Shape.of(1026, 512), List.of(Band.of(left, right)));
    RecordingSink sink = new RecordingSink();
    try (TensorAssembler a = new TensorAssembler()) {
      a.write(halves, locs, sink);
    }
    assertArrayEquals(naive(halves, locs, content, 2), sink.bytes.toByteArray());
    assertEquals(List.of(1026L * 1024), sink.rangeLengths, "one range for the two pieces");
  }

  @Test
  void aStagedLocalFileGetsPassThroughTensorsByKernelCopyWithTheRightCrcAndHash() throws IOException {
    Map<String, byte[]> content = new HashMap<>();
    Map<String, TensorLocation> locs = sources(DType.BF16, new long[][] {{3000, 1024}, {8, 1024}}, content);
    List<AssembledTensor> tensors = List.of(
        new AssembledTensor("a", Shape.of(8, 1024), List.of(Band.of(SourceSlice.whole("s1", 8, 1024)))),
        new AssembledTensor("b", Shape.of(3000, 1024), List.of(Band.of(SourceSlice.whole("s0", 3000, 1024)))),
        new AssembledTensor("c", Shape.of(1024, 8), List.of(Band.of(SourceSlice.whole("s1", 8, 1024).transposed()))));
    ByteArrayOutputStream expected = new ByteArrayOutputStream();
    for (AssembledTensor t : tensors) {
      expected.write(naive(t, locs, content, 2));
    }
    long[] crc = new long[1];
    String out = dir.resolve("out/file.bin").toString();
    StagedOutput.Result result;
    try (TensorAssembler a = new TensorAssembler()) {
      result = StagedOutput.write(out, null, ch -> {
        CountingChannel counted = new CountingChannel(ch, "all", expected.size(), true);
        for (AssembledTensor t : tensors) {
          a.write(t, locs, counted);
        }
        counted.checkComplete();
        crc[0] = counted.crc();
      });
    }
    byte[] want = expected.toByteArray();
    assertArrayEquals(want, Files.readAllBytes(Path.of(out)));
    CRC32 wantCrc = new CRC32();
    wantCrc.update(want);
    assertEquals(wantCrc.getValue(), crc[0]);
    assertEquals(Sha256.of(want), result.sha256);
    assertEquals(want.length, result.bytes);
  }
}
