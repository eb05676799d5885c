package ckptbeam.io.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.security.MessageDigest;
import java.util.HexFormat;

/** Passes bytes through to a channel and hashes them (SHA-256) on the way, so a file's hash costs no second read. */
public final class DigestingChannel implements WritableByteChannel {
  private final WritableByteChannel out;
  private final MessageDigest md = Sha256.digest();
  private long count;

  public DigestingChannel(WritableByteChannel out) {
    this.out = out;
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    ByteBuffer view = src.duplicate();
    int n = 0;
    while (src.hasRemaining()) {
      n += out.write(src);
    }
    view.limit(view.position() + n);
    md.update(view);
    count += n;
    return n;
  }

  /** Bytes written so far. */
  public long count() {
    return count;
  }

  /** The SHA-256 of everything written, hex. */
  public String sha256() {
    return HexFormat.of().formatHex(md.digest());
  }

  @Override
  public boolean isOpen() {
    return out.isOpen();
  }

  @Override
  public void close() {}
}
