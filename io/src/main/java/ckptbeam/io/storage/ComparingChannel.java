package ckptbeam.io.storage;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;

/**
 * A sink that compares what is written to it with a byte range of a file, chunk by chunk, and remembers the first
 * difference. Used to prove that a stored tensor equals what the plan computes from its sources.
 */
public final class ComparingChannel implements WritableByteChannel {
  private final RangeReader actual;
  private final long start;
  private final ByteBuffer buf = ByteBuffer.allocate(1 << 20);
  private long position;
  private long firstDifference = -1;

  public ComparingChannel(RangeReader actual, long start) {
    this.actual = actual;
    this.start = start;
  }

  @Override
  public int write(ByteBuffer expected) throws IOException {
    int n = expected.remaining();
    while (expected.hasRemaining()) {
      int k = Math.min(expected.remaining(), buf.capacity());
      buf.clear().limit(k);
      actual.readFully(start + position, buf);
      buf.flip();
      if (firstDifference < 0) {
        // ByteBuffer.mismatch compares many bytes per instruction (a byte at a time was most of verify's CPU)
        int at = expected.slice(expected.position(), k).mismatch(buf);
        if (at >= 0) {
          firstDifference = position + at;
        }
      }
      expected.position(expected.position() + k);
      position += k;
    }
    return n;
  }

  /** The byte offset of the first difference within the range, or -1. */
  public long firstDifference() {
    return firstDifference;
  }

  @Override
  public boolean isOpen() {
    return true;
  }

  @Override
  public void close() {}
}
