package ckptbeam.io.storage;

import java.io.IOException;
import java.io.InterruptedIOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
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
 * are still read once into the buffers, for the digest and the caller's checksum, but not written from them.
 */
final class BackgroundWriteChannel implements FileRangeSink {
  static final int BUFFER_BYTES = 8 << 20;
  private static final ByteBuffer END = ByteBuffer.allocate(0);
  /** Buffers of finished channels, reused: direct memory is released only by a GC, so allocating per file churns. */
  private static final ConcurrentLinkedQueue<ByteBuffer> POOL =
      new ConcurrentLinkedQueue<>();

  private final WritableByteChannel out;
  private final String name;
  private final MessageDigest digest;
  private final ExecutorService hasher;
  private final BlockingQueue<ByteBuffer> free = new ArrayBlockingQueue<>(2);
  private final BlockingQueue<ByteBuffer> full = new ArrayBlockingQueue<>(3);
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
    this.out = out;
    this.name = name;
    this.digest = digest;
    this.hasher = digest == null ? null : Executors.newSingleThreadExecutor(r -> {
      Thread t = new Thread(r, "ckptbeam-hash " + name);
      t.setDaemon(true);
      return t;
    });
    for (int i = 0; i < buffers.length; i++) {
      ByteBuffer b = POOL.poll();
      buffers[i] = b != null ? b.clear() : ByteBuffer.allocateDirect(BUFFER_BYTES);
      free.add(buffers[i]);
    }
    writer = new Thread(this::drain, "ckptbeam-write " + name);
    writer.setDaemon(true);
    writer.start();
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
   * Waits until everything handed before is written and hashed (both buffers are back), then, chunk by chunk on the
   * calling thread: reads the chunk into a buffer (for the observer and, on the hashing thread, the digest) and has
   * the kernel copy the same chunk from file to file. The writer thread is idle meanwhile; it owns the file again
   * when this returns.
   */
  @Override
  public void appendFileRange(FileChannel source, long position, long count, Consumer<ByteBuffer> observer)
      throws IOException {
    if (!takesFileRanges()) {
      throw new IllegalStateException(name + ": file ranges need a local file underneath");
    }
    checkFailure();
    if (current != null) {
      hand(current);
      current = null;
    }
    ByteBuffer[] own = {take(free), take(free)};
    checkFailure();
    Future<?>[] hashing = new Future<?>[own.length];
    try {
      int i = 0;
      for (long done = 0; done < count; i ^= 1) {
        ByteBuffer b = own[i];
        awaitHash(hashing[i]);
        int n = (int) Math.min(b.capacity(), count - done);
        b.clear().limit(n);
        readFully(source, position + done, b);
        b.flip();
        if (observer != null) {
          observer.accept(b.duplicate());
        }
        if (digest != null) {
          ByteBuffer view = b.duplicate();
          hashing[i] = hasher.submit(() -> digest.update(view));
        }
        transferFully(source, position + done, n, (FileChannel) out);
        done += n;
      }
      awaitHash(hashing[0]);
      awaitHash(hashing[1]);
    } finally {
      for (ByteBuffer b : own) {
        b.clear();
        free.add(b);
      }
    }
  }

  private void readFully(FileChannel source, long position, ByteBuffer b) throws IOException {
    for (long at = position; b.hasRemaining(); ) {
      int n = source.read(b, at);
      if (n < 0) {
        throw new IOException(name + ": a source file ended at byte " + at + " inside a range being copied");
      }
      at += n;
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

  private void awaitHash(Future<?> hashed) throws IOException {
    if (hashed == null) {
      return;
    }
    try {
      hashed.get();
    } catch (ExecutionException e) {
      throw new IOException(name + ": hashing the written bytes failed", e.getCause());
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while hashing");
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
        ByteBuffer b = full.take();
        if (b == END) {
          return;
        }
        b.flip();
        ByteBuffer view = b.duplicate();
        Future<?> hashed = hasher == null || failure != null ? null : hasher.submit(() -> digest.update(view));
        try {
          while (b.hasRemaining() && failure == null) {
            out.write(b);
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
    try {
      full.put(b);
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

  @Override
  public boolean isOpen() {
    return open;
  }

  /** Same as {@link #finish}: a channel closed normally has written everything. */
  @Override
  public void close() throws IOException {
    finish();
  }
}
