package ckptbeam.io.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;

/** SHA-256 of files and bytes, streamed through one direct buffer. */
public final class Sha256 {
  private Sha256() {}

  public static MessageDigest digest() {
    try {
      return MessageDigest.getInstance("SHA-256");
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  public static String of(byte[] data) {
    return HexFormat.of().formatHex(digest().digest(data));
  }

  /** The hash of a whole file (local or remote). */
  public static String ofFile(String path) throws IOException {
    MessageDigest md = digest();
    ByteBuffer buf = ByteBuffer.allocateDirect(4 << 20);
    try (RangeReader in = CheckpointFiles.open(path)) {
      long size = in.size();
      for (long pos = 0; pos < size; ) {
        int n = (int) Math.min(buf.capacity(), size - pos);
        buf.clear().limit(n);
        in.readFully(pos, buf);
        buf.flip();
        md.update(buf);
        pos += n;
      }
    }
    return HexFormat.of().formatHex(md.digest());
  }
}
