package ckptbeam.io.torch;

import ckptbeam.io.storage.CountingChannel;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes the zip container of {@code torch.save} in the layout torch itself writes (docs/formats.md §1.3): stored
 * records, every record's data 64-byte aligned by an {@code FB} padding extra, sizes and CRC in a data descriptor
 * after each record, zip64 fields where a size or an offset needs them and zip64 end records always. Strictly
 * sequential, so the bytes can be hashed as they are written and streamed to any destination.
 */
public final class TorchZipWriter implements Closeable {
  public static final int ALIGNMENT = 64;

  private static final long MAX32 = 0xFFFFFFFFL;

  private final WritableByteChannel out;
  private final String prefix;
  private final List<Entry> entries = new ArrayList<>();
  private long cursor;
  private CountingChannel open;
  private Entry openEntry;

  /**
   * @param out where the bytes go, in order; never revisited
   * @param prefix the archive folder every record lives under (torch reads it from the first entry)
   */
  public TorchZipWriter(WritableByteChannel out, String prefix) {
    if (prefix.isEmpty() || prefix.contains("/")) {
      throw new IllegalArgumentException("archive prefix must be one non-empty folder name: " + prefix);
    }
    this.out = out;
    this.prefix = prefix;
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
    ByteBuffer h = localHeader(name, size);
    writeFully(h);
    openEntry = new Entry(name, cursor, size);
    cursor += h.limit();
    open = new CountingChannel(out, prefix + "/" + record, size, true);
    return open;
  }

  /**
   * Local header as torch (miniz) writes it (§1.3.1): version 0, flags 0x0808 (0x0800 for an empty record), CRC and
   * sizes 0, a zip64 extra {usize, csize = 0}[, offset] when the size or the offset needs it, then the FB padding.
   */
  private ByteBuffer localHeader(byte[] name, long size) {
    boolean bigSize = size >= MAX32;
    boolean bigOffset = cursor >= MAX32;
    int zip64Len = bigSize || bigOffset ? 4 + (bigSize ? 16 : 0) + (bigOffset ? 8 : 0) : 0;
    long start = cursor + 30 + name.length + zip64Len + 4;
    int pad = (int) ((ALIGNMENT - start % ALIGNMENT) % ALIGNMENT);
    int extraLen = zip64Len + 4 + pad;
    ByteBuffer h = le(30 + name.length + extraLen);
    h.putInt(0x04034b50);
    h.putShort((short) 0);
    h.putShort((short) (size == 0 ? 0x0800 : 0x0808));
    h.putShort((short) 0);
    h.putShort((short) 0);
    h.putShort((short) 0);
    h.putInt(0);
    h.putInt(0);
    h.putInt(0);
    h.putShort((short) name.length);
    h.putShort((short) extraLen);
    h.put(name);
    if (zip64Len > 0) {
      h.putShort((short) 0x0001);
      h.putShort((short) (zip64Len - 4));
      if (bigSize) {
        h.putLong(size);
        h.putLong(0); // miniz writes the compressed size as 0 here; the descriptor has it
      }
      if (bigOffset) {
        h.putLong(cursor);
      }
    }
    padding(h, pad);
    return h.flip();
  }

  private static void padding(ByteBuffer h, int pad) {
    h.put((byte) 'F').put((byte) 'B');
    h.putShort((short) pad);
    for (int i = 0; i < pad; i++) {
      h.put((byte) 'Z');
    }
  }

  /** Completes the open record: checks its length and appends the data descriptor (none for an empty record). */
  public void endRecord() throws IOException {
    open.checkComplete();
    openEntry.crc = open.crc();
    cursor += openEntry.size;
    if (openEntry.size > 0) {
      boolean wide = openEntry.size >= MAX32 || openEntry.offset >= MAX32;
      ByteBuffer d = le(wide ? 24 : 16);
      d.putInt(0x08074b50);
      d.putInt((int) openEntry.crc);
      if (wide) {
        d.putLong(openEntry.size).putLong(openEntry.size);
      } else {
        d.putInt((int) openEntry.size).putInt((int) openEntry.size);
      }
      d.flip();
      writeFully(d);
      cursor += d.limit();
    }
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
      short version = 0;
      short flags = (short) (e.size > 0 ? 0x0808 : 0x0800);
      ByteBuffer c = le(46 + e.name.length + extraLen);
      c.putInt(0x02014b50);
      c.putShort(version); // made by
      c.putShort(version); // needed
      c.putShort(flags);
      c.putShort((short) 0);
      c.putShort((short) 0);
      c.putShort((short) 0); // date
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
      writeFully(c);
      cursor += c.limit();
    }
    long cdSize = cursor - cdStart;
    // torch always writes the zip64 end record and its locator
    long zip64Eocd = cursor;
    ByteBuffer z = le(56 + 20);
    z.putInt(0x06064b50);
    z.putLong(44);
    z.putShort((short) 0x031E);
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
    writeFully(z);
    cursor += z.limit();
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
    writeFully(end);
    cursor += end.limit();
  }

  /** Bytes written so far. */
  public long position() {
    return cursor;
  }

  @Override
  public void close() throws IOException {
    out.close();
  }

  private void writeFully(ByteBuffer b) throws IOException {
    while (b.hasRemaining()) {
      out.write(b);
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
