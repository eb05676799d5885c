package ckptbeam.io.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.channels.Channels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
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
}
