package ckptbeam.io.storage;

import java.io.EOFException;
import java.nio.ByteBuffer;

/** Ranged reads of bytes in memory (small files, tests, fuzzing). */
public final class ByteArrayRangeReader implements RangeReader {
  private final String name;
  private final byte[] data;

  public ByteArrayRangeReader(String name, byte[] data) {
    this.name = name;
    this.data = data;
  }

  @Override
  public long size() {
    return data.length;
  }

  @Override
  public void readFully(long offset, ByteBuffer dst) throws EOFException {
    if (offset < 0 || offset + dst.remaining() > data.length) {
      throw new EOFException(name + ": read of " + dst.remaining() + " bytes at " + offset + " runs past the end");
    }
    dst.put(data, (int) offset, dst.remaining());
  }

  @Override
  public void close() {}
}
