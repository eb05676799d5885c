package ckptbeam.io.torch;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.RangeReader;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The central directory of a zip file as torch writes it (docs/formats.md §1.7): where each record's data starts and
 * how long it is, so that tensors can be read as byte ranges of the file, never loaded whole. Every offset and
 * size is checked against the file: these files are untrusted.
 */
public final class ZipDirectory {
  /** One record: its data range in the file. */
  public static final class Record {
    public final String name;
    public final int method;
    public final long compressedSize;
    public final long size;
    public final long dataStart;

    Record(String name, int method, long compressedSize, long size, long dataStart) {
      this.name = name;
      this.method = method;
      this.compressedSize = compressedSize;
      this.size = size;
      this.dataStart = dataStart;
    }
  }

  private static final int MAX_EOCD_SCAN = 65_557;
  private static final long MAX32 = 0xFFFFFFFFL;

  private final String file;
  private final String prefix;
  private final Map<String, Record> records;

  private ZipDirectory(String file, String prefix, Map<String, Record> records) {
    this.file = file;
    this.prefix = prefix;
    this.records = records;
  }

  public static ZipDirectory read(String file, RangeReader in) throws IOException {
    long size = in.size();
    if (size < 22) {
      throw bad(file, "file of " + size + " bytes is too short for a zip");
    }
    ByteBuffer head = le(4);
    in.readFully(0, head);
    if (head.getInt(0) != 0x04034b50) {
      throw bad(file, "not a torch zip checkpoint (no zip signature; the legacy pre-1.6 format is not supported)");
    }
    int tailLen = (int) Math.min(size, MAX_EOCD_SCAN);
    ByteBuffer tail = le(tailLen);
    in.readFully(size - tailLen, tail);
    int eocd = -1;
    for (int i = tailLen - 22; i >= 0; i--) {
      if (tail.getInt(i) == 0x06054b50) {
        eocd = i;
        break;
      }
    }
    if (eocd < 0) {
      throw bad(file, "no end of central directory record (truncated file?)");
    }
    long entries = tail.getShort(eocd + 10) & 0xFFFF;
    long cdSize = tail.getInt(eocd + 12) & MAX32;
    long cdOffset = tail.getInt(eocd + 16) & MAX32;
    if (eocd >= 20 && tail.getInt(eocd - 20) == 0x07064b50) {
      long z64 = tail.getLong(eocd - 20 + 8);
      if (z64 < 0 || z64 + 56 > size) {
        throw bad(file, "zip64 end record offset " + z64 + " is outside the file");
      }
      ByteBuffer z = le(56);
      in.readFully(z64, z);
      if (z.getInt(0) != 0x06064b50) {
        throw bad(file, "bad zip64 end of central directory record");
      }
      entries = z.getLong(32);
      cdSize = z.getLong(40);
      cdOffset = z.getLong(48);
    }
    if (cdOffset < 0 || cdSize < 0 || cdOffset + cdSize > size || cdSize > Integer.MAX_VALUE - 8) {
      throw bad(file, "central directory [" + cdOffset + ", +" + cdSize + ") is outside the " + size + "-byte file");
    }
    ByteBuffer cd = le((int) cdSize);
    in.readFully(cdOffset, cd);
    Map<String, Record> records = new LinkedHashMap<>();
    String prefix = null;
    int pos = 0;
    for (long n = 0; n < entries; n++) {
      if (pos + 46 > cdSize || cd.getInt(pos) != 0x02014b50) {
        throw bad(file, "central directory entry " + n + " is damaged");
      }
      int method = cd.getShort(pos + 10) & 0xFFFF;
      long csize = cd.getInt(pos + 20) & MAX32;
      long usize = cd.getInt(pos + 24) & MAX32;
      int nameLen = cd.getShort(pos + 28) & 0xFFFF;
      int extraLen = cd.getShort(pos + 30) & 0xFFFF;
      int commentLen = cd.getShort(pos + 32) & 0xFFFF;
      long lho = cd.getInt(pos + 42) & MAX32;
      if (pos + 46L + nameLen + extraLen + commentLen > cdSize) {
        throw bad(file, "central directory entry " + n + " runs past the directory");
      }
      String name = new String(cd.array(), pos + 46, nameLen, StandardCharsets.UTF_8);
      // zip64 extra: the fields that are 0xFFFFFFFF, in the order usize, csize, offset
      int e = pos + 46 + nameLen;
      int eEnd = e + extraLen;
      while (e + 4 <= eEnd) {
        int id = cd.getShort(e) & 0xFFFF;
        int len = cd.getShort(e + 2) & 0xFFFF;
        int f = e + 4;
        if (id == 0x0001) {
          if (usize == MAX32 && f + 8 <= e + 4 + len) {
            usize = cd.getLong(f);
            f += 8;
          }
          if (csize == MAX32 && f + 8 <= e + 4 + len) {
            csize = cd.getLong(f);
            f += 8;
          }
          if (lho == MAX32 && f + 8 <= e + 4 + len) {
            lho = cd.getLong(f);
          }
        }
        e += 4 + len;
      }
      pos += 46 + nameLen + extraLen + commentLen;
      int slash = name.indexOf('/');
      if (slash <= 0) {
        throw bad(file, "record \"" + name + "\" is not inside an archive folder");
      }
      if (prefix == null) {
        prefix = name.substring(0, slash);
      } else if (!name.startsWith(prefix + "/")) {
        throw bad(file, "record \"" + name + "\" is outside the archive folder \"" + prefix + "\"");
      }
      if (lho < 0 || csize < 0 || usize < 0 || lho + 30 > size) {
        throw bad(file, "record \"" + name + "\" has a local header outside the file");
      }
      ByteBuffer lh = le(30);
      in.readFully(lho, lh);
      if (lh.getInt(0) != 0x04034b50) {
        throw bad(file, "record \"" + name + "\" has no local header at offset " + lho);
      }
      long dataStart = lho + 30 + (lh.getShort(26) & 0xFFFF) + (lh.getShort(28) & 0xFFFF);
      long stored = method == 0 ? usize : csize;
      if (method == 0 && csize != usize) {
        throw bad(file, "stored record \"" + name + "\" has compressed size " + csize + " != size " + usize);
      }
      if (dataStart + stored > size) {
        throw bad(file, "record \"" + name + "\" (" + stored + " bytes at " + dataStart
            + ") runs past the end of the " + size + "-byte file");
      }
      String record = name.substring(slash + 1);
      if (records.put(record, new Record(record, method, csize, usize, dataStart)) != null) {
        throw bad(file, "record \"" + name + "\" appears twice");
      }
    }
    if (prefix == null) {
      throw bad(file, "the zip holds no record");
    }
    return new ZipDirectory(file, prefix, Collections.unmodifiableMap(records));
  }

  /** The archive folder every record lives under. */
  public String prefix() {
    return prefix;
  }

  /** Records by name relative to the archive folder ({@code data.pkl}, {@code data/0}). */
  public Map<String, Record> records() {
    return records;
  }

  public Record record(String name) throws CheckpointFormatException {
    Record r = records.get(name);
    if (r == null) {
      throw bad(file, "record \"" + prefix + "/" + name + "\" is missing");
    }
    return r;
  }

  /** Reads a small record whole (the pickle), inflating it if deflated; at most {@code max} bytes. */
  public byte[] readSmall(RangeReader in, String name, long max) throws IOException {
    Record r = record(name);
    if (r.size > max || r.compressedSize > max) {
      throw bad(file, "record \"" + name + "\" of " + r.size + " bytes is larger than the " + max + " allowed");
    }
    if (r.method == 0) {
      ByteBuffer b = ByteBuffer.allocate((int) r.size);
      in.readFully(r.dataStart, b);
      return b.array();
    }
    if (r.method != 8) {
      throw bad(file, "record \"" + name + "\" uses compression method " + r.method);
    }
    ByteBuffer c = ByteBuffer.allocate((int) r.compressedSize);
    in.readFully(r.dataStart, c);
    Inflater inf = new Inflater(true);
    try {
      inf.setInput(c.array());
      byte[] out = new byte[(int) r.size];
      int n = 0;
      while (n < out.length && !inf.finished()) {
        int k = inf.inflate(out, n, out.length - n);
        if (k == 0 && (inf.needsInput() || inf.needsDictionary())) {
          break;
        }
        n += k;
      }
      if (n != out.length) {
        throw bad(file, "deflated record \"" + name + "\" inflates to " + n + " bytes, not " + r.size);
      }
      return out;
    } catch (DataFormatException e) {
      throw bad(file, "deflated record \"" + name + "\" is corrupt: " + e.getMessage());
    } finally {
      inf.end();
    }
  }

  private static CheckpointFormatException bad(String file, String detail) {
    return new CheckpointFormatException(file, "InvalidTorchZip", detail);
  }

  private static ByteBuffer le(int n) {
    return ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
  }
}
