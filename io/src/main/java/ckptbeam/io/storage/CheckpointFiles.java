package ckptbeam.io.storage;

import ckptbeam.io.CheckpointFormatException;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.Channels;
import java.nio.channels.FileChannel;
import java.nio.channels.ReadableByteChannel;
import java.nio.channels.SeekableByteChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.List;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.MatchResult;
import org.apache.beam.sdk.io.fs.ResourceId;
import org.apache.beam.sdk.util.MimeTypes;

/**
 * File access for checkpoints through Beam's {@link FileSystems}, so that local paths and {@code gs://} URLs
 * work the same way. Local files take a fast path (positional reads on a {@link FileChannel}).
 */
public final class CheckpointFiles {
  private CheckpointFiles() {}

  /** Whether a path is on the local file system (no URL scheme, or {@code file:}). */
  public static boolean isLocal(String path) {
    int colon = path.indexOf(':');
    int slash = path.indexOf('/');
    return colon < 0 || (slash >= 0 && slash < colon) || path.startsWith("file:");
  }

  /** {@code dir} joined with a relative {@code name} (which may contain '/'). */
  public static String resolve(String dir, String name) {
    if (isLocal(dir)) {
      return Paths.get(dir).resolve(name).toString();
    }
    String base = dir.endsWith("/") ? dir : dir + "/";
    return base + name;
  }

  /** Size of a file, or -1 when it does not exist. */
  public static long sizeOrMissing(String path) throws IOException {
    if (isLocal(path)) {
      Path p = Paths.get(path);
      return Files.isRegularFile(p) ? Files.size(p) : -1;
    }
    MatchResult m = FileSystems.match(path);
    if (m.status() != MatchResult.Status.OK || m.metadata().isEmpty()) {
      return -1;
    }
    return m.metadata().get(0).sizeBytes();
  }

  public static boolean exists(String path) throws IOException {
    return sizeOrMissing(path) >= 0;
  }

  /** Whether a local path is a directory; remote "directories" are prefixes and always exist. */
  public static boolean isDirectory(String path) {
    return !isLocal(path) || Files.isDirectory(Paths.get(path));
  }

  /** Reads a whole small file (a JSON index, a config), refusing files larger than {@code maxBytes}. */
  public static byte[] readSmallFile(String path, long maxBytes) throws IOException {
    try (RangeReader r = open(path)) {
      long size = r.size();
      if (size > maxBytes) {
        throw new IOException(path + ": file is " + size + " bytes, more than the " + maxBytes + " allowed");
      }
      ByteBuffer buf = ByteBuffer.allocate((int) size);
      r.readFully(0, buf);
      return buf.array();
    }
  }

  /**
   * Refuses a local file that resolves, through symbolic links, to a place outside {@code folder}: a checkpoint's
   * shards are its own files, and following a link out of it could read anything on the machine.
   */
  public static void checkInside(String folder, String file) throws IOException {
    if (!isLocal(folder) || !isLocal(file)) {
      return;
    }
    Path root = Paths.get(folder).toRealPath();
    Path real = Paths.get(file).toRealPath();
    if (!real.startsWith(root)) {
      throw new CheckpointFormatException(file, "OutsideCheckpoint", "resolves to " + real
          + ", outside the checkpoint folder " + root + " (a symbolic link leading out of it)");
    }
  }

  /** Opens a file for ranged reads. */
  public static RangeReader open(String path) throws IOException {
    if (isLocal(path)) {
      Path p = Paths.get(path.startsWith("file:") ? path.substring(5) : path);
      if (!Files.isRegularFile(p)) {
        throw new FileNotFoundException(path + ": no such file");
      }
      return new LocalRangeReader(path, FileChannel.open(p, StandardOpenOption.READ));
    }
    ResourceId id = FileSystems.matchNewResource(path, false);
    long size = FileSystems.matchSingleFileSpec(path).sizeBytes();
    return new SeekableRangeReader(path, FileSystems.open(id), size);
  }

  /** Writes a small file in one go (tracker files, JSON). Local files are written to a temp file then renamed. */
  public static void writeSmallFile(String path, byte[] data) throws IOException {
    if (isLocal(path)) {
      Path p = Paths.get(path);
      if (p.getParent() != null) {
        Files.createDirectories(p.getParent());
      }
      Path tmp = p.resolveSibling(p.getFileName() + StagedOutput.STAGING_SUFFIX);
      Files.write(tmp, data);
      Files.move(tmp, p, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      return;
    }
    try (WritableByteChannel ch = FileSystems.create(FileSystems.matchNewResource(path, false), MimeTypes.BINARY)) {
      ByteBuffer b = ByteBuffer.wrap(data);
      while (b.hasRemaining()) {
        ch.write(b);
      }
    }
  }

  /** Copies a small file (config, tokenizer) from one checkpoint folder to another. */
  public static void copySmallFile(String from, String to, long maxBytes) throws IOException {
    writeSmallFile(to, readSmallFile(from, maxBytes));
  }

  /** Deletes the given files if they exist. */
  public static void deleteIfExists(List<String> paths) throws IOException {
    for (String path : paths) {
      if (isLocal(path)) {
        Files.deleteIfExists(Paths.get(path));
      } else if (exists(path)) {
        FileSystems.delete(List.of(FileSystems.matchNewResource(path, false)));
      }
    }
  }

  /**
   * Moves a finished local staging file to its destination: an atomic rename for a local destination, a
   * streamed upload otherwise.
   */
  public static void publish(Path staged, String destination) throws IOException {
    if (isLocal(destination)) {
      Path dest = Paths.get(destination);
      Files.move(staged, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      return;
    }
    ResourceId id = FileSystems.matchNewResource(destination, false);
    try (InputStream in = Files.newInputStream(staged);
        OutputStream out = Channels.newOutputStream(FileSystems.create(id, MimeTypes.BINARY))) {
      in.transferTo(out);
    }
    Files.delete(staged);
  }

  private static final class LocalRangeReader implements RangeReader {
    private final String name;
    private final FileChannel channel;

    LocalRangeReader(String name, FileChannel channel) {
      this.name = name;
      this.channel = channel;
    }

    @Override
    public long size() throws IOException {
      return channel.size();
    }

    /**
     * Reads into a heap buffer go through this thread's one direct buffer: the JDK would otherwise allocate, and
     * cache per thread, a temporary direct buffer for every new size asked for, and memory would creep up with the
     * variety of reads (measured: +140 MB peak RSS on an 8 GB grouped-GEMM conversion).
     */
    private static final ThreadLocal<ByteBuffer> STAGING = ThreadLocal.withInitial(() -> ByteBuffer.allocateDirect(1 << 20));

    @Override
    public void readFully(long offset, ByteBuffer dst) throws IOException {
      if (dst.isDirect()) {
        readDirect(offset, dst);
        return;
      }
      ByteBuffer staging = STAGING.get();
      long pos = offset;
      while (dst.hasRemaining()) {
        staging.clear().limit(Math.min(staging.capacity(), dst.remaining()));
        readDirect(pos, staging);
        staging.flip();
        pos += staging.remaining();
        dst.put(staging);
      }
    }

    private void readDirect(long offset, ByteBuffer dst) throws IOException {
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = channel.read(dst, pos);
        if (n < 0) {
          throw new EOFException(name + ": unexpected end of file at byte " + pos);
        }
        pos += n;
      }
    }

    @Override
    public FileChannel localFile() {
      return channel;
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }

  private static final class SeekableRangeReader implements RangeReader {
    private final String name;
    private final ReadableByteChannel channel;
    private final long size;

    SeekableRangeReader(String name, ReadableByteChannel channel, long size) {
      this.name = name;
      this.channel = channel;
      this.size = size;
    }

    @Override
    public long size() {
      return size;
    }

    @Override
    public synchronized void readFully(long offset, ByteBuffer dst) throws IOException {
      if (!(channel instanceof SeekableByteChannel)) {
        throw new IOException(name + ": the file system does not support ranged reads");
      }
      ((SeekableByteChannel) channel).position(offset);
      long pos = offset;
      while (dst.hasRemaining()) {
        int n = channel.read(dst);
        if (n < 0) {
          throw new EOFException(name + ": unexpected end of file at byte " + pos);
        }
        pos += n;
      }
    }

    @Override
    public void close() throws IOException {
      channel.close();
    }
  }
}
