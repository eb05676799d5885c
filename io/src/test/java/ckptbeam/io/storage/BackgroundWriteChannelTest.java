package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Random;
import java.util.zip.CRC32;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class BackgroundWriteChannelTest {
  @Test
  void bytesArriveInOrderWhateverTheWriteSizes() throws Exception {
    Random rnd = new Random(3);
    byte[] data = new byte[3 * BackgroundWriteChannel.BUFFER_BYTES + 12345];
    rnd.nextBytes(data);
    ByteArrayOutputStream sink = new ByteArrayOutputStream();
    BackgroundWriteChannel ch = new BackgroundWriteChannel(Channels.newChannel(sink), "test");
    int at = 0;
    while (at < data.length) {
      // small, buffer-sized and larger-than-buffer writes, heap and direct
      int n = Math.min(data.length - at, rnd.nextInt(3) == 0 ? BackgroundWriteChannel.BUFFER_BYTES + 7
          : 1 + rnd.nextInt(100_000));
      ByteBuffer src = rnd.nextBoolean() ? ByteBuffer.wrap(data, at, n) : ByteBuffer.allocateDirect(n)
          .put(data, at, n).flip();
      ch.write(src);
      assertFalse(src.hasRemaining());
      at += n;
    }
    ch.finish();
    assertArrayEquals(data, sink.toByteArray());
    assertFalse(ch.isOpen());
  }

  @Test
  void theDigestHashedAlongsideTheWritesIsTheSha256OfTheBytesInOrder() throws Exception {
    Random rnd = new Random(5);
    byte[] data = new byte[2 * BackgroundWriteChannel.BUFFER_BYTES + 777];
    rnd.nextBytes(data);
    ByteArrayOutputStream sink = new ByteArrayOutputStream();
    MessageDigest digest = Sha256.digest();
    BackgroundWriteChannel ch = new BackgroundWriteChannel(Channels.newChannel(sink), digest, "hashed");
    for (int at = 0; at < data.length; at += 100_003) {
      ch.write(ByteBuffer.wrap(data, at, Math.min(100_003, data.length - at)));
    }
    ch.finish();
    assertArrayEquals(data, sink.toByteArray());
    assertEquals(Sha256.of(data), HexFormat.of().formatHex(digest.digest()));
    assertTrue(Thread.getAllStackTraces().keySet().stream().noneMatch(t -> t.getName().equals("ckptbeam-hash hashed")),
        "the hashing thread ends with the file");
  }

  @Test
  void fileRangesCopiedByTheKernelLandInOrderBetweenBufferedBytesAndAreHashed(@TempDir Path dir) throws Exception {
    Path out = Files.createFile(dir.resolve("out.bin"));
    Written w = writeMixed(dir, out, null);
    assertTrue(w.channel.takesFileRanges());
    assertFalse(w.channel.wroteDirectly());
    w.assertLandedIn(out);
  }

  /**
   * Direct I/O (where the test's file system has it: ext4 here): writes of any size, file ranges between them, a last
   * partial block; the same bytes, digest and observed ranges as through the page cache, and no fallback on the way
   * (the buffers stay whole blocks).
   */
  @Test
  void directWritesLandInOrderWithTheirDigestAndWithoutFallingBack(@TempDir Path dir) throws Exception {
    Path out = Files.createFile(dir.resolve("direct.bin"));
    try (FileChannel direct = BackgroundWriteChannel.openDirect(out)) {
      assumeTrue(direct != null, "the temp folder's file system takes O_DIRECT");
      Written w = writeMixed(dir, out, direct);
      assertTrue(w.channel.wroteDirectly(), "no direct write was refused");
      w.assertLandedIn(out);
    }
  }

  @Test
  void aRefusedDirectWriteFallsBackToThePageCacheForTheRestOfTheFile(@TempDir Path dir) throws Exception {
    Path out = Files.createFile(dir.resolve("fallback.bin"));
    FileChannel closed = FileChannel.open(out, StandardOpenOption.WRITE);
    closed.close(); // every direct write fails
    Written w = writeMixed(dir, out, closed);
    assertFalse(w.channel.wroteDirectly());
    w.assertLandedIn(out);
  }

  /** A direct write that stops part-way through a buffer: the rest of that buffer, and of the file, goes on. */
  @Test
  void aDirectWriteRefusedPartWayThroughABufferIsFinishedInPlace(@TempDir Path dir) throws Exception {
    Path out = Files.createFile(dir.resolve("partway.bin"));
    try (FileChannel plain = FileChannel.open(out, StandardOpenOption.WRITE)) {
      Written w = writeMixed(dir, out, new ShortThenRefusing(plain, 5));
      assertFalse(w.channel.wroteDirectly());
      w.assertLandedIn(out);
    }
  }

  /** Writes at most three blocks per positional call, and refuses every call after the first {@code calls}. */
  private static final class ShortThenRefusing extends FileChannel {
    private final FileChannel to;
    private int calls;

    ShortThenRefusing(FileChannel to, int calls) {
      this.to = to;
      this.calls = calls;
    }

    @Override
    public int write(ByteBuffer src, long position) throws IOException {
      if (calls-- <= 0) {
        throw new IOException("Invalid argument");
      }
      ByteBuffer part = src.slice(src.position(), Math.min(src.remaining(), 3 * BackgroundWriteChannel.ALIGNMENT));
      int n = to.write(part, position);
      src.position(src.position() + n);
      return n;
    }

    // nothing else is called on the direct channel
    @Override public int read(ByteBuffer dst) { throw new UnsupportedOperationException(); }
    @Override public long read(ByteBuffer[] dsts, int offset, int length) { throw new UnsupportedOperationException(); }
    @Override public int write(ByteBuffer src) { throw new UnsupportedOperationException(); }
    @Override public long write(ByteBuffer[] srcs, int offset, int length) { throw new UnsupportedOperationException(); }
    @Override public long position() { throw new UnsupportedOperationException(); }
    @Override public FileChannel position(long newPosition) { throw new UnsupportedOperationException(); }
    @Override public long size() { throw new UnsupportedOperationException(); }
    @Override public FileChannel truncate(long size) { throw new UnsupportedOperationException(); }
    @Override public void force(boolean metaData) { throw new UnsupportedOperationException(); }
    @Override public long transferTo(long p, long c, WritableByteChannel t) { throw new UnsupportedOperationException(); }
    @Override public long transferFrom(java.nio.channels.ReadableByteChannel s, long p, long c) {
      throw new UnsupportedOperationException();
    }
    @Override public int read(ByteBuffer dst, long position) { throw new UnsupportedOperationException(); }
    @Override public java.nio.MappedByteBuffer map(MapMode mode, long position, long size) {
      throw new UnsupportedOperationException();
    }
    @Override public java.nio.channels.FileLock lock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }
    @Override public java.nio.channels.FileLock tryLock(long position, long size, boolean shared) {
      throw new UnsupportedOperationException();
    }
    @Override protected void implCloseChannel() {}
  }

  private record Written(BackgroundWriteChannel channel, byte[] expected, String sha256, long ranges, long seen) {
    /** The file holds the bytes written, in order, the digest is theirs, and the observer saw exactly the ranges. */
    void assertLandedIn(Path out) throws IOException {
      assertArrayEquals(expected, Files.readAllBytes(out));
      assertEquals(Sha256.of(expected), sha256);
      assertEquals(ranges, seen, "the observer saw exactly the ranges' bytes, in order");
    }
  }

  /**
   * Into {@code out}, with {@code direct} beside it (null: through the page cache, ranges copied by the kernel):
   * buffered writes, a range longer than a buffer, more buffered bytes, aligned, odd small and empty ranges, one byte.
   */
  private static Written writeMixed(Path dir, Path out, FileChannel direct) throws IOException {
    Random rnd = new Random(17);
    byte[] source = new byte[BackgroundWriteChannel.BUFFER_BYTES + 9999];
    rnd.nextBytes(source);
    Path src = Files.write(dir.resolve("source-" + out.getFileName()), source);
    ByteArrayOutputStream expected = new ByteArrayOutputStream();
    MessageDigest digest = Sha256.digest();
    CRC32 seen = new CRC32();
    CRC32 ranges = new CRC32();
    BackgroundWriteChannel ch;
    try (RangeReader in = CheckpointFiles.open(src.toString());
        FileChannel file = FileChannel.open(out, StandardOpenOption.WRITE)) {
      ch = new BackgroundWriteChannel(file, direct, digest, out.getFileName().toString());
      long[][] pieces = {{-1, 1001}, {5, source.length - 5}, {-1, 3 * BackgroundWriteChannel.BUFFER_BYTES / 2 + 1},
          {0, 4096}, {77, 3}, {-1, 8191}, {0, 0}, {-1, 1}};
      for (long[] piece : pieces) {
        if (piece[0] < 0) {
          byte[] b = new byte[(int) piece[1]];
          rnd.nextBytes(b);
          ch.write(ByteBuffer.wrap(b));
          expected.write(b);
        } else {
          ch.appendFileRange(in, piece[0], piece[1], b -> seen.update(b));
          byte[] range = Arrays.copyOfRange(source, (int) piece[0], (int) (piece[0] + piece[1]));
          expected.write(range);
          ranges.update(range);
        }
      }
      ch.finish();
    }
    return new Written(ch, expected.toByteArray(), HexFormat.of().formatHex(digest.digest()), ranges.getValue(),
        seen.getValue());
  }

  @Test
  void aRangeBeyondTheEndOfItsSourceNamesTheOutputAndTheSource(@TempDir Path dir) throws Exception {
    Path src = Files.write(dir.resolve("short.bin"), new byte[100]);
    try (RangeReader in = CheckpointFiles.open(src.toString()); FileChannel out = FileChannel.open(
        dir.resolve("out.bin"), StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
      BackgroundWriteChannel ch = new BackgroundWriteChannel(out, "out.bin");
      IOException e = assertThrows(IOException.class, () -> ch.appendFileRange(in, 50, 200, null));
      assertTrue(e.getMessage().startsWith("out.bin: ") && e.getMessage().contains("short.bin")
          && e.getMessage().contains("end of file at byte 100"), e.getMessage());
      ch.abandon();
    }
  }

  @Test
  void aChannelThatIsNoLocalFileTakesNoRanges() {
    BackgroundWriteChannel ch = new BackgroundWriteChannel(Channels.newChannel(new ByteArrayOutputStream()), "x");
    assertFalse(ch.takesFileRanges());
    assertFalse(new CountingChannel(ch, "t", 10, true).takesFileRanges());
    ch.abandon();
  }

  @Test
  void aFailedBackgroundWriteSurfacesInTheWriter() throws Exception {
    WritableByteChannel failing = new WritableByteChannel() {
      @Override
      public int write(ByteBuffer src) throws IOException {
        throw new IOException("disk full");
      }

      @Override
      public boolean isOpen() {
        return true;
      }

      @Override
      public void close() {}
    };
    BackgroundWriteChannel ch = new BackgroundWriteChannel(failing, "test");
    IOException e = assertThrows(IOException.class, () -> {
      byte[] chunk = new byte[1 << 20];
      for (int i = 0; i < 64; i++) { // more than the buffers hold: the failure must reach the writer
        ch.write(ByteBuffer.wrap(chunk));
      }
      ch.finish();
    });
    assertTrue(e.getMessage().contains("disk full"), e.getMessage());
  }

  @Test
  void abandoningStopsTheBackgroundThread() throws Exception {
    BackgroundWriteChannel ch = new BackgroundWriteChannel(Channels.newChannel(new ByteArrayOutputStream()), "x");
    ch.write(ByteBuffer.wrap(new byte[100]));
    ch.abandon();
    assertFalse(ch.isOpen());
    assertTrue(Thread.getAllStackTraces().keySet().stream().noneMatch(t -> t.getName().equals("ckptbeam-write x")));
  }
}
