package ckptbeam.io.torch;

import ckptbeam.io.storage.CountingChannel;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Writes the zip container of {@code torch.save}: stored records, every record's data 64-byte aligned by an
 * {@code FB} padding extra, zip64 fields where a size or an offset needs them. Two layouts:
 * <ul>
 *   <li>{@link Layout#TORCH} (docs/formats.md §1.3), what {@code torch.save} itself writes: sizes and CRC in a data
 *       descriptor after each record, zip64 end records always. Strictly sequential, so the bytes can be hashed as they
 *       are written and streamed to any destination. Used for rank files.</li>
 *   <li>{@link Layout#HEADER_CRC} (§1.6, the golden file of Appendix A): sizes and CRC in the local header, patched
 *       once the record is complete, which needs a seekable channel.</li>
 * </ul>
 */
public final class TorchZipWriter implements Closeable {
  /** Where the record sizes and CRC go. */
  public enum Layout { TORCH, HEADER_CRC }

  public static final int ALIGNMENT = 64;

  private static final long MAX32 = 0xFFFFFFFFL;
  private static final int DOS_DATE_1980_01_01 = 0x0021;

  private final WritableByteChannel out;
  private final String prefix;
  private final Layout layout;
  private final List<Entry> entries = new ArrayList<>();
  private long cursor;
  private CountingChannel open;
  private Entry openEntry;

  /** @param prefix the archive folder every record lives under (torch reads it from the first entry) */
  public TorchZipWriter(FileChannel out, String prefix) throws IOException {
    this(out, prefix, Layout.HEADER_CRC);
  }

  /** In the torch layout {@code out} may be any channel: everything is written in order, never revisited. */
  public TorchZipWriter(WritableByteChannel out, String prefix, Layout layout) throws IOException {
    if (prefix.isEmpty() || prefix.contains("/")) {
      throw new IllegalArgumentException("archive prefix must be one non-empty folder name: " + prefix);
    }
    if (layout == Layout.HEADER_CRC && !(out instanceof FileChannel)) {
      throw new IllegalArgumentException("the header-CRC layout patches headers: it needs a FileChannel");
    }
    this.out = out;
    this.prefix = prefix;
    this.layout = layout;
    this.cursor = out instanceof FileChannel ? ((FileChannel) out).position() : 0;
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
    ByteBuffer h = layout == Layout.TORCH ? torchLocalHeader(name, size) : headerCrcLocalHeader(name, size);
    writeFully(h, cursor);
    openEntry = new Entry(name, cursor, size);
    cursor += h.limit();
    seekEnd();
    open = new CountingChannel(out, prefix + "/" + record, size, true);
    return open;
  }

  /** Local header as in §1.6: version 20 (45 for zip64), flags 0x0800, sizes and a CRC patched in later. */
  private ByteBuffer headerCrcLocalHeader(byte[] name, long size) {
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
    padding(h, pad);
    return h.flip();
  }

  /**
   * Local header as torch (miniz) writes it (§1.3.1): version 0, flags 0x0808 (0x0800 for an empty record), CRC and
   * sizes 0, a zip64 extra {usize, csize = 0}[, offset] when the size or the offset needs it, then the FB padding.
   */
  private ByteBuffer torchLocalHeader(byte[] name, long size) {
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

  /**
   * Completes the open record: checks its length, then patches the CRC into the local header (§1.6) or appends the
   * data descriptor (torch layout).
   */
  public void endRecord() throws IOException {
    open.checkComplete();
    openEntry.crc = open.crc();
    cursor += openEntry.size;
    if (layout == Layout.HEADER_CRC) {
      ByteBuffer crc = le(4);
      crc.putInt((int) openEntry.crc).flip();
      writeFully(crc, openEntry.offset + 14);
    } else if (openEntry.size > 0) {
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
      writeFully(d, cursor);
      cursor += d.limit();
    }
    seekEnd();
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
      short version = layout == Layout.TORCH ? 0 : (short) (extraLen > 0 ? 45 : 20);
      short flags = (short) (layout == Layout.TORCH && e.size > 0 ? 0x0808 : 0x0800);
      short date = (short) (layout == Layout.TORCH ? 0 : DOS_DATE_1980_01_01);
      ByteBuffer c = le(46 + e.name.length + extraLen);
      c.putInt(0x02014b50);
      c.putShort(version); // made by
      c.putShort(version); // needed
      c.putShort(flags);
      c.putShort((short) 0);
      c.putShort((short) 0);
      c.putShort(date);
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
    if (layout == Layout.TORCH || cdStart >= MAX32 || cdSize >= MAX32 || entries.size() >= 0xFFFF) {
      long zip64Eocd = cursor;
      ByteBuffer z = le(56 + 20);
      z.putInt(0x06064b50);
      z.putLong(44);
      z.putShort((short) (layout == Layout.TORCH ? 0x031E : 45));
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
    seekEnd();
  }

  /** Bytes written so far. */
  public long position() {
    return cursor;
  }

  @Override
  public void close() throws IOException {
    out.close();
  }

  /** Writes at {@code at}: positionally in the header-CRC layout, in order (at is the current end) otherwise. */
  private void writeFully(ByteBuffer b, long at) throws IOException {
    if (layout == Layout.HEADER_CRC) {
      long pos = at;
      while (b.hasRemaining()) {
        pos += ((FileChannel) out).write(b, pos);
      }
      return;
    }
    while (b.hasRemaining()) {
      out.write(b);
    }
  }

  /** Keeps a FileChannel's position at the end of what was written (the header-CRC layout writes positionally). */
  private void seekEnd() throws IOException {
    if (layout == Layout.HEADER_CRC) {
      ((FileChannel) out).position(cursor);
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
