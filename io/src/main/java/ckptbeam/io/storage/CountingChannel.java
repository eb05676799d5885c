package ckptbeam.io.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.function.Consumer;
import java.util.zip.CRC32;

/**
 * A write-only view of a channel that counts bytes, optionally keeps a CRC-32, and refuses to go past a declared
 * length: a producer that writes more or fewer bytes than its tensor holds is caught at once.
 */
public final class CountingChannel implements FileRangeSink {
  private final WritableByteChannel out;
  private final String what;
  private final long limit;
  private final CRC32 crc;
  private long count;

  public CountingChannel(WritableByteChannel out, String what, long limit, boolean withCrc) {
    this.out = out;
    this.what = what;
    this.limit = limit;
    this.crc = withCrc ? new CRC32() : null;
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    int n = src.remaining();
    checkRoomFor(n);
    if (crc != null) {
      crc.update(src.duplicate());
    }
    int written = 0;
    while (src.hasRemaining()) {
      written += out.write(src);
    }
    count += written;
    return written;
  }

  @Override
  public boolean takesFileRanges() {
    return out instanceof FileRangeSink sink && sink.takesFileRanges();
  }

  /** Passes the range on; the CRC is taken from the bytes the sink reads back for its own checksum. */
  @Override
  public void appendFileRange(RangeReader source, long position, long count, Consumer<ByteBuffer> observer)
      throws IOException {
    if (!takesFileRanges()) {
      throw new IllegalStateException(what + ": the channel underneath takes no file ranges");
    }
    checkRoomFor(count);
    Consumer<ByteBuffer> seen = observer;
    if (crc != null) {
      seen = observer == null ? b -> crc.update(b) : b -> {
        crc.update(b.duplicate());
        observer.accept(b);
      };
    }
    ((FileRangeSink) out).appendFileRange(source, position, count, seen);
    this.count += count;
  }

  private void checkRoomFor(long n) throws IOException {
    if (count + n > limit) {
      throw new IOException(what + ": producer wrote more than the declared " + limit + " bytes");
    }
  }

  public long count() {
    return count;
  }

  public long crc() {
    return crc == null ? 0 : crc.getValue();
  }

  public void checkComplete() throws IOException {
    if (count != limit) {
      throw new IOException(what + ": producer wrote " + count + " bytes, expected " + limit);
    }
  }

  @Override
  public boolean isOpen() {
    return out.isOpen();
  }

  @Override
  public void close() {}
}
