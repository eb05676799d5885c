package ckptbeam.io;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes the zip container of {@code torch.save} in the layout of formats.md §1.6: stored records, sizes and CRC in
 * the local header (no data descriptors), every record's data 64-byte aligned by an {@code FB} padding extra, and
 * zip64 fields only where a size or an offset needs them.
 *
 * <p>The CRC goes before the data, but the data is streamed: the local header is written with a CRC of 0 and patched
 * once the record is complete. That needs a seekable channel; remote destinations are staged in a local file.
 */
public final class TorchZipWriter implements Closeable {
  public static final int ALIGNMENT = 64;

  private static final long MAX32 = 0xFFFFFFFFL;
  private static final int DOS_DATE_1980_01_01 = 0x0021;

  private final FileChannel out;
  private final String prefix;
  private final List<Entry> entries = new ArrayList<>();
  private long cursor;
  private CountingChannel open;
  private Entry openEntry;

  /** @param prefix the archive folder every record lives under (torch reads it from the first entry) */
  public TorchZipWriter(FileChannel out, String prefix) throws IOException {
    if (prefix.isEmpty() || prefix.contains("/")) {
      throw new IllegalArgumentException("archive prefix must be one non-empty folder name: " + prefix);
    }
    this.out = out;
    this.prefix = prefix;
    this.cursor = out.position();
  }

  /** Writes a small record whose bytes are at hand. */
  public void writeRecord(String record, byte[] data) throws IOException {
    CountingChannel ch = beginRecord(record, data.length);
    ch.write(ByteBuffer.wrap(data));
    endRecord();
  }

  /**
   * Starts a record of exactly {@code size} bytes and returns the channel to stream them into; call
   * {@link #endRecord()} when done.
   */
  public CountingChannel beginRecord(String record, long size) throws IOException {
    if (open != null) {
      throw new IllegalStateException("record " + openEntry.name + " is still open");
    }
    byte[] name = (prefix + "/" + record).getBytes(StandardCharsets.UTF_8);
    boolean zip64 = size >= MAX32;
    int zip64Len = zip64 ? 20 : 0;
    long start = cursor + 30 + name.length + zip64Len + 4;
    int pad = (int) ((ALIGNMENT - start % ALIGNMENT) % ALIGNMENT);
    int extraLen = zip64Len + 4 + pad;

    ByteBuffer h = le(30 + name.length + extraLen);
    h.putInt(0x04034b50);
    h.putShort((short) (zip64 ? 45 : 20));
    h.putShort((short) 0x0800); // UTF-8 names
    h.putShort((short) 0); // stored
    h.putShort((short) 0); // time
    h.putShort((short) DOS_DATE_1980_01_01);
    h.putInt(0); // CRC, patched in endRecord
    h.putInt((int) (zip64 ? MAX32 : size));
    h.putInt((int) (zip64 ? MAX32 : size));
    h.putShort((short) name.length);
    h.putShort((short) extraLen);
    h.put(name);
    if (zip64) {
      h.putShort((short) 0x0001);
      h.putShort((short) 16);
      h.putLong(size);
      h.putLong(size);
    }
    h.put((byte) 'F').put((byte) 'B');
    h.putShort((short) pad);
    for (int i = 0; i < pad; i++) {
      h.put((byte) 'Z');
    }
    h.flip();
    writeFully(h, cursor);
    openEntry = new Entry(name, cursor, size);
    cursor += h.limit();
    out.position(cursor);
    open = new CountingChannel(out, prefix + "/" + record, size, true);
    return open;
  }

  /** Completes the open record: checks its length and patches the CRC into its local header. */
  public void endRecord() throws IOException {
    open.checkComplete();
    openEntry.crc = open.crc();
    ByteBuffer crc = le(4);
    crc.putInt((int) openEntry.crc).flip();
    writeFully(crc, openEntry.offset + 14);
    cursor += openEntry.size;
    out.position(cursor);
    entries.add(openEntry);
    open = null;
    openEntry = null;
  }

  /** Writes the central directory and the end records. The channel stays open. */
  public void finish() throws IOException {
    if (open != null) {
      throw new IllegalStateException("record " + openEntry.name + " is still open");
    }
    long cdStart = cursor;
    for (Entry e : entries) {
      boolean bigSize = e.size >= MAX32;
      boolean bigOffset = e.offset >= MAX32;
      int z64Len = (bigSize ? 16 : 0) + (bigOffset ? 8 : 0);
      int extraLen = z64Len == 0 ? 0 : 4 + z64Len;
      short version = (short) (extraLen > 0 ? 45 : 20);
      ByteBuffer c = le(46 + e.name.length + extraLen);
      c.putInt(0x02014b50);
      c.putShort(version); // made by
      c.putShort(version); // needed
      c.putShort((short) 0x0800);
      c.putShort((short) 0);
      c.putShort((short) 0);
      c.putShort((short) DOS_DATE_1980_01_01);
      c.putInt((int) e.crc);
      c.putInt((int) Math.min(e.size, MAX32));
      c.putInt((int) Math.min(e.size, MAX32));
      c.putShort((short) e.name.length);
      c.putShort((short) extraLen);
      c.putShort((short) 0); // comment
      c.putShort((short) 0); // disk
      c.putShort((short) 0); // internal attributes
      c.putInt(0); // external attributes
      c.putInt((int) Math.min(e.offset, MAX32));
      c.put(e.name);
      if (extraLen > 0) {
        c.putShort((short) 0x0001);
        c.putShort((short) z64Len);
        if (bigSize) {
          c.putLong(e.size);
          c.putLong(e.size);
        }
        if (bigOffset) {
          c.putLong(e.offset);
        }
      }
      c.flip();
      writeFully(c, cursor);
      cursor += c.limit();
    }
    long cdSize = cursor - cdStart;
    if (cdStart >= MAX32 || cdSize >= MAX32 || entries.size() >= 0xFFFF) {
      long zip64Eocd = cursor;
      ByteBuffer z = le(56 + 20);
      z.putInt(0x06064b50);
      z.putLong(44);
      z.putShort((short) 45);
      z.putShort((short) 45);
      z.putInt(0);
      z.putInt(0);
      z.putLong(entries.size());
      z.putLong(entries.size());
      z.putLong(cdSize);
      z.putLong(cdStart);
      z.putInt(0x07064b50);
      z.putInt(0);
      z.putLong(zip64Eocd);
      z.putInt(1);
      z.flip();
      writeFully(z, cursor);
      cursor += z.limit();
    }
    ByteBuffer end = le(22);
    end.putInt(0x06054b50);
    end.putShort((short) 0);
    end.putShort((short) 0);
    end.putShort((short) Math.min(entries.size(), 0xFFFF));
    end.putShort((short) Math.min(entries.size(), 0xFFFF));
    end.putInt((int) Math.min(cdSize, MAX32));
    end.putInt((int) Math.min(cdStart, MAX32));
    end.putShort((short) 0);
    end.flip();
    writeFully(end, cursor);
    cursor += end.limit();
    out.position(cursor);
  }

  /** Bytes written so far. */
  public long position() {
    return cursor;
  }

  @Override
  public void close() throws IOException {
    out.close();
  }

  private void writeFully(ByteBuffer b, long at) throws IOException {
    long pos = at;
    while (b.hasRemaining()) {
      pos += out.write(b, pos);
    }
  }

  private static ByteBuffer le(int n) {
    return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
  }

  private static final class Entry {
    final byte[] name;
    final long offset;
    final long size;
    long crc;

    Entry(byte[] name, long offset, long size) {
      this.name = name;
      this.offset = offset;
      this.size = size;
    }
  }
}
