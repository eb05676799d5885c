package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.nio.ByteBuffer;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The first difference between what is written and a file's range, wherever it falls (also past the first chunk). */
class ComparingChannelTest {
  @TempDir Path dir;

  private long firstDifference(byte[] file, long start, byte[] written, int piece) throws Exception {
    Path f = dir.resolve("f" + System.nanoTime());
    Files.write(f, file);
    try (RangeReader in = CheckpointFiles.open(f.toString())) {
      ComparingChannel c = new ComparingChannel(in, start);
      for (int at = 0; at < written.length; at += piece) {
        c.write(ByteBuffer.wrap(written, at, Math.min(piece, written.length - at)));
      }
      return c.firstDifference();
    }
  }

  @Test
  void findsTheFirstDifferentByte() throws Exception {
    byte[] file = new byte[3 << 20];
    new SplittableRandom(3).nextBytes(file);
    int start = 17;
    byte[] same = java.util.Arrays.copyOfRange(file, start, file.length);
    assertEquals(-1, firstDifference(file, start, same, 700_001));
    for (int at : new int[] {0, 5, (1 << 20) - 1, 1 << 20, (2 << 20) + 12345}) {
      byte[] changed = same.clone();
      changed[at] ^= 0x40;
      changed[changed.length - 1] ^= 1; // a later difference does not move the first one
      assertEquals(at, firstDifference(file, start, changed, 700_001), "at " + at);
      assertEquals(at, firstDifference(file, start, changed, same.length), "at " + at + ", one write");
    }
  }
}
