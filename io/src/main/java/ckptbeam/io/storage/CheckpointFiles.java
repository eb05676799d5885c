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
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.fs.EmptyMatchTreatment;
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

  /** The local file a local path names ({@code file:} URLs included). */
  public static Path localPath(String path) {
    if (path.startsWith("file://")) {
      return Paths.get(java.net.URI.create(path));
    }
    return Paths.get(path.startsWith("file:") ? path.substring(5) : path);
  }

  /** {@code dir} joined with a relative {@code name} (which may contain '/'). */
  public static String resolve(String dir, String name) {
    if (isLocal(dir)) {
      return localPath(dir).resolve(name).toString();
    }
    String base = dir.endsWith("/") ? dir : dir + "/";
    return base + name;
  }

  /**
   * Size of a file, or -1 when it does not exist. Only a definite answer means missing: a local file that is not
   * there, or a store's not-found; any other answer from a store is retried ({@link StoreRetry}) and, if it persists,
   * is an error naming the file, never "missing".
   */
  public static long sizeOrMissing(String path) throws IOException {
    if (isLocal(path)) {
      Path p = localPath(path);
      return Files.isRegularFile(p) ? Files.size(p) : -1;
    }
    return StoreRetry.call(path + ": looking the object up", () -> remoteSizeOrMissing(path));
  }

  /** One lookup of a remote object's size (no retry). */
  private static long remoteSizeOrMissing(String path) throws IOException {
    MatchResult m = FileSystems.match(path);
    switch (m.status()) {
      case NOT_FOUND:
        return -1;
      case OK:
        return m.metadata().isEmpty() ? -1 : m.metadata().get(0).sizeBytes();
      default:
        m.metadata(); // throws the store's error when the match carries one
        throw new IOException(path + ": the store answered the lookup with status " + m.status());
    }
  }

  public static boolean exists(String path) throws IOException {
    return sizeOrMissing(path) >= 0;
  }

  /** Whether a local path is a directory; remote "directories" are prefixes and always exist. */
  public static boolean isDirectory(String path) {
    return !isLocal(path) || Files.isDirectory(localPath(path));
  }

  /**
   * The files under a folder (at any depth), as paths relative to it with '/' separators, sorted; none when the folder
   * does not exist. A remote folder is every object whose name starts with the prefix {@code dir/}; the listing is
   * retried like every call to the store.
   */
  public static List<String> list(String dir) throws IOException {
    List<String> out = new ArrayList<>();
    if (isLocal(dir)) {
      Path root = localPath(dir);
      if (!Files.isDirectory(root)) {
        return out;
      }
      try (Stream<Path> s = Files.walk(root)) {
        s.filter(Files::isRegularFile).forEach(f -> out.add(root.relativize(f).toString().replace('\\', '/')));
      }
    } else {
      String prefix = dir.endsWith("/") ? dir : dir + "/";
      for (String file : match(prefix + "**")) {
        if (file.startsWith(prefix) && file.length() > prefix.length()) {
          out.add(file.substring(prefix.length()));
        }
      }
    }
    out.sort(null);
    return out;
  }

  /**
   * The files a glob matches (Beam's {@link FileSystems} syntax), as full paths; none when nothing matches. A store
   * error is retried and then thrown, never taken for "nothing there".
   */
  public static List<String> match(String glob) throws IOException {
    return StoreRetry.call(glob + ": listing", () -> {
      MatchResult m = FileSystems.match(List.of(glob), EmptyMatchTreatment.ALLOW).get(0);
      List<String> files = new ArrayList<>();
      if (m.status() == MatchResult.Status.NOT_FOUND) {
        return files;
      }
      for (MatchResult.Metadata md : m.metadata()) { // throws the store's error for a failed match
        files.add(md.resourceId().toString());
      }
      return files;
    });
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
    Path root = localPath(folder).toRealPath();
    Path real = localPath(file).toRealPath();
    if (!real.startsWith(root)) {
      throw new CheckpointFormatException(file, "OutsideCheckpoint", "resolves to " + real
          + ", outside the checkpoint folder " + root + " (a symbolic link leading out of it)");
    }
  }

  /** Opens a file for ranged reads. */
  public static RangeReader open(String path) throws IOException {
    if (isLocal(path)) {
      Path p = localPath(path);
      if (!Files.isRegularFile(p)) {
        throw new FileNotFoundException(path + ": no such file");
      }
      return new LocalRangeReader(path, FileChannel.open(p, StandardOpenOption.READ));
    }
    long size = sizeOrMissing(path);
    if (size < 0) {
      throw new FileNotFoundException(path + ": no such file");
    }
    return new SeekableRangeReader(path, FileSystems.matchNewResource(path, false), size);
  }

  /** Writes a small file in one go (tracker files, JSON). Local files are written to a temp file then renamed. */
  public static void writeSmallFile(String path, byte[] data) throws IOException {
    if (isLocal(path)) {
      writeLocal(localPath(path), out -> {
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
          out.write(b);
        }
      });
      return;
    }
    StoreRetry.run(path + ": writing", () -> {
      try (WritableByteChannel ch = FileSystems.create(FileSystems.matchNewResource(path, false), MimeTypes.BINARY)) {
        ByteBuffer b = ByteBuffer.wrap(data);
        while (b.hasRemaining()) {
          ch.write(b);
        }
      }
    });
  }

  /**
   * Copies a file of any size from one checkpoint folder to another (config, tokenizer, code, a README), streamed in
   * 8 MiB pieces. A local destination is written beside itself and renamed into place; a remote copy is retried
   * whole.
   */
  public static void copyFile(String from, String to) throws IOException {
    if (isLocal(to)) {
      writeLocal(localPath(to), out -> stream(from, out));
      return;
    }
    StoreRetry.run(to + ": writing a copy of " + from, () -> {
      try (WritableByteChannel out = FileSystems.create(FileSystems.matchNewResource(to, false), MimeTypes.BINARY)) {
        stream(from, out);
      }
    });
  }

  /** What writes a local file's content. */
  private interface LocalContent {
    void writeTo(FileChannel out) throws IOException;
  }

  /**
   * Writes a local file beside itself and renames it into place, so that no reader sees it half written; the partial
   * file is removed when writing fails.
   */
  private static void writeLocal(Path p, LocalContent content) throws IOException {
    if (p.getParent() != null) {
      Files.createDirectories(p.getParent());
    }
    Path tmp = p.resolveSibling(p.getFileName() + StagedOutput.STAGING_SUFFIX);
    try {
      try (FileChannel out = FileChannel.open(tmp, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
          StandardOpenOption.TRUNCATE_EXISTING)) {
        content.writeTo(out);
      }
      Files.move(tmp, p, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(tmp);
      throw e;
    }
  }

  private static void stream(String from, WritableByteChannel out) throws IOException {
    try (RangeReader in = open(from)) {
      long size = in.size();
      ByteBuffer buf = ByteBuffer.allocate((int) Math.min(size, 8 << 20));
      for (long done = 0; done < size; ) {
        buf.clear().limit((int) Math.min(buf.capacity(), size - done));
        in.readFully(done, buf);
        buf.flip();
        while (buf.hasRemaining()) {
          done += out.write(buf);
        }
      }
    }
  }

  /** Deletes the given files if they exist. */
  public static void deleteIfExists(List<String> paths) throws IOException {
    for (String path : paths) {
      if (isLocal(path)) {
        Files.deleteIfExists(localPath(path));
      } else {
        StoreRetry.run(path + ": deleting", () -> {
          if (remoteSizeOrMissing(path) >= 0) {
            try {
              FileSystems.delete(List.of(FileSystems.matchNewResource(path, false)));
            } catch (IOException e) {
              if (!StoreRetry.isNotFound(e)) { // gone since the lookup (an earlier attempt deleted it): done
                throw e;
              }
            }
          }
        });
      }
    }
  }

  /**
   * Moves a finished local staging file to its destination: an atomic rename for a local destination, a
   * streamed upload otherwise.
   */
  public static void publish(Path staged, String destination) throws IOException {
    if (isLocal(destination)) {
      Path dest = localPath(destination);
      Files.move(staged, dest, StandardCopyOption.REPLACE_EXISTING, StandardCopyOption.ATOMIC_MOVE);
      return;
    }
    ResourceId id = FileSystems.matchNewResource(destination, false);
    StoreRetry.run(destination + ": uploading", () -> {
      try (InputStream in = Files.newInputStream(staged);
          OutputStream out = Channels.newOutputStream(FileSystems.create(id, MimeTypes.BINARY))) {
        in.transferTo(out);
      }
    });
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

  /**
   * Ranged reads of a remote object. A read that fails transiently (a reset, a cut body, a 503) is retried from where
   * it stopped on a fresh channel; reading past the object's end is an error at once.
   */
  private static final class SeekableRangeReader implements RangeReader {
    private final String name;
    private final ResourceId id;
    private final long size;
    private ReadableByteChannel channel;

    SeekableRangeReader(String name, ResourceId id, long size) {
      this.name = name;
      this.id = id;
      this.size = size;
    }

    @Override
    public long size() {
      return size;
    }

    @Override
    public synchronized void readFully(long offset, ByteBuffer dst) throws IOException {
      if (offset < 0 || offset + dst.remaining() > size) {
        throw new EOFException(name + ": unexpected end of file at byte " + size + " (bytes " + offset + " to "
            + (offset + dst.remaining()) + " asked for)");
      }
      int start = dst.position();
      StoreRetry.run(name + ": reading bytes " + offset + " to " + (offset + dst.remaining()), () -> {
        long pos = offset + (dst.position() - start);
        try {
          if (channel == null) {
            channel = FileSystems.open(id);
          }
          if (!(channel instanceof SeekableByteChannel)) {
            throw new IOException(name + ": the file system does not support ranged reads");
          }
          ((SeekableByteChannel) channel).position(pos);
          while (dst.hasRemaining()) {
            int n = channel.read(dst);
            if (n < 0) {
              throw new EOFException(name + ": the store ended the read at byte " + pos + " of " + size);
            }
            pos += n;
          }
        } catch (IOException | RuntimeException e) {
          closeQuietly(); // a channel that failed is not trusted again: the retry opens a new one
          throw e;
        }
      });
    }

    private void closeQuietly() {
      try {
        if (channel != null) {
          channel.close();
        }
      } catch (IOException | RuntimeException e) {
        // it failed already
      }
      channel = null;
    }

    @Override
    public synchronized void close() throws IOException {
      if (channel != null) {
        channel.close();
        channel = null;
      }
    }
  }
}
