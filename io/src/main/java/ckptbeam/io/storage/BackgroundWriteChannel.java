package ckptbeam.io.storage;

import com.sun.nio.file.ExtendedOpenOption;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * Hands written bytes to a thread of its own that passes them on to the real channel, so that a writer reads and
 * assembles the next piece while the previous one is written out: one output file's reads and writes overlap instead
 * of alternating. With a digest, each buffer is hashed on a third thread while it is being written: SHA-256 runs at
 * about 1 GB/s on one core, as slow as the write itself on fast storage, so hashing after the write on the same
 * thread doubled the time per buffer. Bytes are copied into one of two fixed direct buffers; a writer that gets ahead
 * waits for a free one, so memory stays at two buffers. {@link #finish} writes what is left and reports any failure
 * of the background writes; {@link #abandon} stops without finishing.
 *
 * <p>Into a local file, a range of another local file is copied by the kernel ({@link #appendFileRange}): the bytes
 * are still read once into the buffers, for the digest and the caller's checksum, but not written from them. The
 * caller's thread reads the next chunk while the writer thread has the previous one copied and the hashing thread
 * hashes it.
 *
 * <p>With a second channel on the same file opened for direct I/O ({@link #openDirect}), the buffers are written
 * with {@code O_DIRECT}: the disk reads them where they are, and the kernel neither copies them into the page cache
 * nor writes them back later. Each buffer is written at its own position, whole blocks directly and the last
 * partial block through the ordinary channel; file ranges are read into the buffers and written the same way (they
 * are read for the digest anyway). On our 2-core VM, 3.3 GB with {@code dd}: buffered with fdatasync 12.3 s (7.1 s
 * system time), direct 5.4 s (0.35 s); the V4-Flash-shaped benchmark's hf2mcore (25 GB written) 49-51 s -> 35-42 s,
 * system time 38-44 s -> 16 s. A direct write that the file system refuses falls back to the ordinary channel for
 * the rest of the file.
 */
final class BackgroundWriteChannel implements FileRangeSink {
  static final int BUFFER_BYTES = 8 << 20;
  /** Buffer addresses are aligned to this; direct I/O needs block-aligned memory, offsets and lengths. */
  static final int ALIGNMENT = 4096;
  /** {@code -Dckptbeam.directWrites=false} writes through the page cache (as before direct I/O was used). */
  static final boolean DIRECT_WRITES = !"false".equals(System.getProperty("ckptbeam.directWrites"));
  /** The end of the file: the writer thread stops. */
  private static final Pending END = new Pending(ByteBuffer.allocate(0), null, 0);
  /** Buffers of finished channels, reused: direct memory is released only by a GC, so allocating per file churns. */
  private static final ConcurrentLinkedQueue<ByteBuffer> POOL =
      new ConcurrentLinkedQueue<>();

  private final WritableByteChannel out;
  /** The same file opened for direct I/O, or null; dropped (set null) by the writer thread if a write is refused. */
  private FileChannel direct;
  /** Buffers are written at their positions (direct mode, and after falling back from it); {@code out}'s stays 0. */
  private final boolean positional;
  /** Bytes written so far, on the writer thread: where the next buffer goes when positional. */
  private long written;
  private final String name;
  private final MessageDigest digest;
  private final ExecutorService hasher;
  private final BlockingQueue<ByteBuffer> free = new ArrayBlockingQueue<>(2);
  private final BlockingQueue<Pending> full = new ArrayBlockingQueue<>(3);
  private final ByteBuffer[] buffers = new ByteBuffer[2];
  private final Thread writer;
  private volatile IOException failure;
  private ByteBuffer current;
  private boolean open = true;

  BackgroundWriteChannel(WritableByteChannel out, String name) {
    this(out, null, name);
  }

  /** @param digest updated with every byte written, in order, alongside the writes; null for none */
  BackgroundWriteChannel(WritableByteChannel out, MessageDigest digest, String name) {
    this(out, null, digest, name);
  }

  /**
   * @param direct {@code out}'s file opened again by {@link #openDirect}, or null: the buffers are then written with
   *     direct I/O at their positions ({@code out} must be that file's channel, empty, and takes only the last
   *     partial block)
   */
  BackgroundWriteChannel(WritableByteChannel out, FileChannel direct, MessageDigest digest, String name) {
    if (direct != null && !(out instanceof FileChannel)) {
      throw new IllegalArgumentException(name + ": direct writes need the file's own channel beside them");
    }
    this.out = out;
    this.direct = direct;
    this.positional = direct != null;
    this.name = name;
    this.digest = digest;
    this.hasher = digest == null ? null : Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "ckptbeam-hash " + name);
      t.setDaemon(true);
      return t;
    });
    for (int i = 0; i < buffers.length; i++) {
      ByteBuffer b = POOL.poll();
      buffers[i] = b != null ? b.clear() : ByteBuffer.allocateDirect(BUFFER_BYTES + ALIGNMENT)
          .alignedSlice(ALIGNMENT).limit(BUFFER_BYTES).slice();
      free.add(buffers[i]);
    }
    writer = new Thread(this::drain, "ckptbeam-write " + name);
    writer.setDaemon(true);
    writer.start();
  }

  /**
   * {@code file} (existing, empty) opened for direct writes, or null where that is turned off or the file system
   * refuses {@code O_DIRECT} (tmpfs, some FUSE mounts). Blocks larger than our buffers' alignment are not looked up
   * here: the first direct write is refused, and the file falls back ({@link #writeAt}).
   */
  static FileChannel openDirect(Path file) {
    if (!DIRECT_WRITES) {
      return null;
    }
    try {
      return FileChannel.open(file, StandardOpenOption.WRITE, ExtendedOpenOption.DIRECT);
    } catch (IOException | UnsupportedOperationException e) {
      return null;
    }
  }

  @Override
  public int write(ByteBuffer src) throws IOException {
    checkFailure();
    int n = src.remaining();
    while (src.hasRemaining()) {
      if (current == null) {
        current = take(free);
        checkFailure();
      }
      int chunk = Math.min(src.remaining(), current.remaining());
      ByteBuffer part = src.duplicate();
      part.limit(part.position() + chunk);
      current.put(part);
      src.position(src.position() + chunk);
      if (!current.hasRemaining()) {
        hand(current);
        current = null;
      }
    }
    return n;
  }

  @Override
  public boolean takesFileRanges() {
    return out instanceof FileChannel;
  }

  /**
   * Per chunk of up to one buffer, on the calling thread: reads the chunk into a free buffer (for the observer here
   * and the digest on the hashing thread) and hands it to the writer thread, which has the kernel copy the same bytes
   * from {@code source} instead of writing the buffer. Chunks and buffered writes keep their order in the one queue.
   * {@code source} must stay open until this channel is finished.
   */
  @Override
  public void appendFileRange(RangeReader source, long position, long count, Consumer<ByteBuffer> observer)
      throws IOException {
    if (!takesFileRanges()) {
      throw new IllegalStateException(name + ": file ranges need a local file underneath");
    }
    if (source.localFile() == null) {
      throw new IllegalArgumentException(name + ": a file range needs a reader of a local file");
    }
    checkFailure();
    if (positional) {
      readIntoBuffers(source, position, count, observer);
      return;
    }
    if (current != null) {
      hand(current);
      current = null;
    }
    for (long done = 0; done < count; ) {
      ByteBuffer b = take(free);
      checkFailure();
      int n = (int) Math.min(b.capacity(), count - done);
      b.clear().limit(n);
      try {
        source.readFully(position + done, b);
      } catch (IOException e) {
        throw new IOException(name + ": " + e.getMessage(), e); // the reader names the source, this the output
      }
      if (observer != null) {
        observer.accept(b.duplicate().flip());
      }
      hand(new Pending(b, source, position + done));
      done += n;
    }
  }

  /** A file range read straight into the buffers, as if written: they stay whole blocks for the direct writes. */
  private void readIntoBuffers(RangeReader source, long position, long count, Consumer<ByteBuffer> observer)
      throws IOException {
    for (long done = 0; done < count; ) {
      if (current == null) {
        current = take(free);
        checkFailure();
      }
      int n = (int) Math.min(current.remaining(), count - done);
      ByteBuffer into = current.slice(current.position(), n);
      try {
        source.readFully(position + done, into);
      } catch (IOException e) {
        throw new IOException(name + ": " + e.getMessage(), e); // the reader names the source, this the output
      }
      if (observer != null) {
        observer.accept(into.flip());
      }
      current.position(current.position() + n);
      if (!current.hasRemaining()) {
        hand(current);
        current = null;
      }
      done += n;
    }
  }

  /**
   * Writes {@code b} at {@link #written}: the whole blocks with direct I/O while the position is block-aligned, the
   * rest (the file's last partial block) through {@code out}. A direct write that fails is done again through
   * {@code out}, and direct I/O is not used for the rest of the file: a real error (a full disk) fails there too.
   */
  private void writeAt(ByteBuffer b) throws IOException {
    FileChannel file = (FileChannel) out;
    long start = written;
    int base = b.position();
    written += b.remaining();
    if (direct != null && start % ALIGNMENT == 0) {
      ByteBuffer blocks = b.slice(base, b.remaining() - b.remaining() % ALIGNMENT);
      try {
        while (blocks.hasRemaining()) {
          direct.write(blocks, start + blocks.position());
        }
      } catch (IOException e) {
        direct = null;
      }
      b.position(base + blocks.position());
    }
    while (b.hasRemaining()) {
      file.write(b, start + b.position() - base);
    }
  }

  private void transferFully(FileChannel source, long position, long count, FileChannel target) throws IOException {
    for (long done = 0; done < count; ) {
      long n = source.transferTo(position + done, count - done, target);
      if (n <= 0) {
        throw new IOException(name + ": copying a source range stopped at byte " + (position + done));
      }
      done += n;
    }
  }

  /** Writes what is buffered, waits for the background writes to end, and rethrows their failure if any. */
  void finish() throws IOException {
    if (!open) {
      return;
    }
    open = false;
    if (current != null && current.position() > 0) {
      hand(current);
    }
    current = null;
    hand(END);
    try {
      writer.join();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while finishing a file");
    } finally {
      stopHasher();
    }
    release();
    checkFailure();
  }

  /** Stops the background thread without writing what is buffered (the output is being thrown away). */
  void abandon() {
    open = false;
    writer.interrupt();
    try {
      writer.join(10_000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    stopHasher();
    if (!writer.isAlive()) {
      release();
    }
  }

  private void stopHasher() {
    if (hasher != null) {
      hasher.shutdownNow();
      try {
        hasher.awaitTermination(10, TimeUnit.SECONDS);
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
      }
    }
  }

  private void release() {
    for (ByteBuffer b : buffers) {
      POOL.add(b);
    }
  }

  private void drain() {
    try {
      while (true) {
        Pending p = full.take();
        if (p == END) {
          return;
        }
        ByteBuffer b = p.buffer.flip();
        ByteBuffer view = b.duplicate();
        Future<?> hashed = hasher == null || failure != null ? null : hasher.submit(() -> digest.update(view));
        try {
          if (p.source != null) {
            if (failure == null) {
              transferFully(p.source.localFile(), p.position, b.remaining(), (FileChannel) out);
            }
          } else if (positional) {
            if (failure == null) {
              writeAt(b);
            }
          } else {
            while (b.hasRemaining() && failure == null) {
              out.write(b);
            }
          }
          if (hashed != null) {
            hashed.get(); // the buffer is reused only when both are done with it
          }
        } catch (IOException e) {
          failure = e;
        } catch (ExecutionException e) {
          failure = new IOException(name + ": hashing the written bytes failed", e.getCause());
        }
        b.clear();
        free.put(b); // also after a failure, so that the producer never waits forever
      }
    } catch (InterruptedException e) {
      // abandoned
    }
  }

  private void hand(ByteBuffer b) throws IOException {
    hand(new Pending(b, null, 0));
  }

  private void hand(Pending p) throws IOException {
    try {
      full.put(p);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while writing");
    }
  }

  private static ByteBuffer take(BlockingQueue<ByteBuffer> q) throws IOException {
    try {
      return q.take();
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while writing");
    }
  }

  private void checkFailure() throws IOException {
    IOException e = failure;
    if (e != null) {
      throw new IOException(e.getMessage(), e);
    }
  }

  /** Whether every buffer so far went out with direct I/O (it was given a direct channel and never fell back). */
  boolean wroteDirectly() {
    return direct != null;
  }

  @Override
  public boolean isOpen() {
    return open;
  }

  /** Same as {@link #finish}: a channel closed normally has written everything. */
  @Override
  public void close() throws IOException {
    finish();
  }

  /**
   * A filled buffer for the writer thread: its bytes are written, or, when {@code source} is set, the same bytes are
   * copied by the kernel from {@code source} at {@code position} and the buffer serves the digest only.
   */
  private record Pending(ByteBuffer buffer, RangeReader source, long position) {}
}
