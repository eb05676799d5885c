package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;
import java.util.HexFormat;
import java.util.Random;
import org.junit.jupiter.api.Test;

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
