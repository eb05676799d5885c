package ckptbeam.io.tensor;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.FileRangeSink;
import ckptbeam.io.storage.RangeReader;
import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.WritableByteChannel;
import java.util.HashMap;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;

/**
 * Evaluates {@link AssembledTensor} descriptions: reads the source byte ranges they name and streams the target
 * tensor's bytes, in order, into a sink. Memory is two fixed buffers whatever the tensor size: output rows are
 * produced a few at a time (a transposed slice as a blocked transpose), and rows too wide for the buffer are
 * streamed piecewise.
 *
 * <p>One assembler serves one writer thread; it keeps one open reader per source file until closed.
 */
public final class TensorAssembler implements Closeable {
  /** Default size of each of the two buffers. */
  public static final int DEFAULT_BUFFER_BYTES = 8 << 20;
  /**
   * Contiguous ranges from this size up go from a local source file to a local output by a kernel copy when the sink
   * takes one ({@link FileRangeSink}); smaller ones are not worth the sink's wait for its buffered bytes.
   */
  static final long KERNEL_COPY_MIN_BYTES = 1 << 20;

  private final Map<String, RangeReader> readers = new HashMap<>();
  /** The source ranges {@link #warm} has read, so each is read ahead once per file written. */
  private final Set<String> warmed = new HashSet<>();
  private final byte[] slab;
  private final byte[] tmp;
  /** What {@code tmp} holds after {@link #fillRows} read a block: its reader, offset and length; null reader: nothing. */
  private RangeReader tmpReader;
  private long tmpAt;
  private int tmpLength;
  /** Contiguous ranges go straight from the file into this and out to the sink: no copy through the heap. */
  private final ByteBuffer stream;

  public TensorAssembler() {
    this(DEFAULT_BUFFER_BYTES);
  }

  public TensorAssembler(int bufferBytes) {
    if (bufferBytes < 64) {
      throw new IllegalArgumentException("buffer too small: " + bufferBytes);
    }
    this.slab = new byte[bufferBytes];
    this.tmp = new byte[bufferBytes];
    this.stream = ByteBuffer.allocateDirect(bufferBytes);
  }

  /**
   * Checks that every slice's source is known, fits its source and that all sources share one dtype, and returns
   * that dtype. Errors name the target key and the source tensor.
   */
  public static DType dtypeOf(AssembledTensor t, Map<String, TensorLocation> sources) throws IOException {
    TensorLocation first = null;
    for (Band b : t.bands()) {
      for (SourceSlice s : b.slices()) {
        TensorLocation loc = sources.get(s.source());
        if (loc == null) {
          throw new IOException(t.key() + ": source tensor \"" + s.source() + "\" was not found in the input");
        }
        if (!s.fitsIn(loc.shape())) {
          throw new IOException(t.key() + ": source tensor \"" + s.source() + "\" has shape " + loc.shape()
              + ", too small for the slice " + s);
        }
        if (first != null && first.dtype() != loc.dtype()) {
          throw new IOException(loc.file() + ": tensor \"" + loc.name() + "\" is " + loc.dtype() + " but \""
              + first.name() + "\" in " + first.file() + " is " + first.dtype() + "; both are parts of " + t.key()
              + ", and the parts of one tensor must share a dtype");
        }
        first = loc;
      }
    }
    if (first == null) {
      throw new IOException(t.key() + ": no source");
    }
    return first.dtype();
  }

  /** Streams the tensor's bytes into {@code sink}. */
  public void write(AssembledTensor t, Map<String, TensorLocation> sources, WritableByteChannel sink)
      throws IOException {
    DType dtype = dtypeOf(t, sources);
    for (Band b : t.bands()) {
      writeBand(b, dtype.size(), sources, sink);
    }
  }

  private void writeBand(Band given, int es, Map<String, TensorLocation> sources, WritableByteChannel sink)
      throws IOException {
    Band band = given.coalesced();
    long height = band.height();
    long rowBytes = band.width() * es;
    if (height == 0 || rowBytes == 0) {
      return;
    }
    SourceSlice first = band.slices().get(0);
    TensorLocation firstLoc = sources.get(first.source());
    if (band.slices().size() == 1 && !first.isTransposed() && first.colStart() == 0
        && first.colCount() == first.sourceCols(firstLoc.shape())) {
      long start = firstLoc.offset() + first.rowStart() * first.colCount() * es;
      copyRange(reader(firstLoc), start, height * rowBytes, sink);
      return;
    }
    if (rowBytes > slab.length) {
      for (long row = 0; row < height; row++) {
        for (SourceSlice s : band.slices()) {
          streamWideRow(s, sources.get(s.source()), es, row, sink);
        }
      }
      return;
    }
    int rowsPerStep = (int) (slab.length / rowBytes);
    for (long r0 = 0; r0 < height; r0 += rowsPerStep) {
      int n = (int) Math.min(rowsPerStep, height - r0);
      int pieceOffset = 0;
      for (SourceSlice s : band.slices()) {
        TensorLocation loc = sources.get(s.source());
        if (s.isTransposed()) {
          fillTransposed(s, loc, es, r0, n, (int) rowBytes, pieceOffset);
        } else {
          fillRows(s, loc, es, r0, n, (int) rowBytes, pieceOffset);
        }
        pieceOffset += (int) (s.outputWidth() * es);
      }
      writeFully(sink, slab, n * (int) rowBytes);
    }
  }

  /**
   * Output rows {@code [r0, r0+n)} of a plain slice into the slab at column byte offset {@code po}. A window that is a
   * good part of each source row is cut out of whole rows read in one block (as {@link #fillTransposed} does): a read
   * per row costs a call each and, cold, a strided pattern; the block stays in {@code tmp} for the next slice that
   * needs the same rows.
   */
  private void fillRows(SourceSlice s, TensorLocation loc, int es, long r0, int n, int rowBytes, int po)
      throws IOException {
    RangeReader in = reader(loc);
    long cols = s.sourceCols(loc.shape());
    int w = (int) (s.colCount() * es);
    long rowSpan = cols * es;
    if (w < rowSpan && rowSpan <= tmp.length && rowSpan <= 8L * w) {
      int blockRows = (int) (tmp.length / rowSpan);
      for (int q0 = 0; q0 < n; q0 += blockRows) {
        int m = Math.min(blockRows, n - q0);
        long at = loc.offset() + (s.rowStart() + r0 + q0) * rowSpan;
        int length = (int) (m * rowSpan);
        if (tmpReader != in || tmpAt != at || tmpLength < length) {
          tmpReader = null; // a failed read leaves no block behind
          in.readFully(at, ByteBuffer.wrap(tmp, 0, length));
          tmpReader = in;
          tmpAt = at;
          tmpLength = length;
        }
        for (int q = 0; q < m; q++) {
          System.arraycopy(tmp, (int) (q * rowSpan + s.colStart() * es), slab, (q0 + q) * rowBytes + po, w);
        }
      }
      return;
    }
    for (int r = 0; r < n; r++) {
      long at = loc.offset() + ((s.rowStart() + r0 + r) * cols + s.colStart()) * es;
      in.readFully(at, ByteBuffer.wrap(slab, r * rowBytes + po, w));
    }
  }

  /**
   * Output rows {@code [r0, r0+n)} of a transposed slice: source columns {@code colStart+r0 ..}, every source row
   * of the window. Source rows are read in blocks into {@code tmp}, then transposed into the slab.
   */
  private void fillTransposed(SourceSlice s, TensorLocation loc, int es, long r0, int n, int rowBytes, int po)
      throws IOException {
    RangeReader in = reader(loc);
    long cols = s.sourceCols(loc.shape());
    int windowBytes = n * es;
    long rowSpan = cols * es;
    // Whole source rows are read in one sequential block and the window's columns picked out of it when the window
    // is a good part of each row: reading each row's window on its own costs a call per row and, on a cold cache, a
    // strided pattern that defeats the disk's readahead (grouped GEMM at DeepSeek-V3's sizes reads 2 KiB of every
    // 14 KiB row: 41 s -> 33 s cold for a 4.7 GB model). Narrower windows keep the per-row reads, or the copies of
    // the unused columns would cost more than the calls saved.
    boolean wholeRows = rowSpan <= tmp.length && rowSpan <= 8L * windowBytes;
    int stride = wholeRows ? (int) rowSpan : windowBytes;
    tmpReader = null; // tmp is overwritten here
    if (!wholeRows && loc.computed() == null && CheckpointFiles.isLocal(loc.file())) {
      // Narrow windows are read a row at a time, and every band comes back for the next window of the same rows.
      // On a cold cache that strided pattern defeats the disk's readahead (mcore2hf of grouped experts reads 2 KiB
      // of every 64 KiB row, 32 times over): read the rows once, sequentially, so the window reads hit the page cache.
      warm(in, loc.file(), loc.offset() + s.rowStart() * rowSpan, s.rowCount() * rowSpan);
    }
    int blockRows = Math.max(1, tmp.length / stride);
    for (long q0 = 0; q0 < s.rowCount(); q0 += blockRows) {
      int m = (int) Math.min(blockRows, s.rowCount() - q0);
      long firstRow = s.rowStart() + q0;
      if (wholeRows) {
        in.readFully(loc.offset() + firstRow * rowSpan, ByteBuffer.wrap(tmp, 0, m * stride));
      } else {
        for (int q = 0; q < m; q++) {
          long at = loc.offset() + ((firstRow + q) * cols + s.colStart() + r0) * es;
          in.readFully(at, ByteBuffer.wrap(tmp, q * windowBytes, windowBytes));
        }
      }
      // element (q, j) of the block goes to output row j, column q0+q
      int from = wholeRows ? (int) ((s.colStart() + r0) * es) : 0;
      Kernels.transpose(tmp, from, stride, m, n, es, slab, rowBytes, po + (int) (q0 * es));
    }
  }

  /** Reads a local file's byte range once, sequentially, into the OS page cache (the bytes are not kept). */
  private void warm(RangeReader in, String file, long at, long length) throws IOException {
    if (!warmed.add(file + "@" + at + "+" + length)) {
      return;
    }
    for (long done = 0; done < length; ) {
      int n = (int) Math.min(tmp.length, length - done);
      in.readFully(at + done, ByteBuffer.wrap(tmp, 0, n));
      done += n;
    }
  }

  /** One output row of one slice when a whole band row does not fit the buffer. */
  private void streamWideRow(SourceSlice s, TensorLocation loc, int es, long row, WritableByteChannel sink)
      throws IOException {
    RangeReader in = reader(loc);
    long cols = s.sourceCols(loc.shape());
    if (!s.isTransposed()) {
      long at = loc.offset() + ((s.rowStart() + row) * cols + s.colStart()) * es;
      copyRange(in, at, s.colCount() * es, sink);
      return;
    }
    // a source column: elements a full source row apart
    int fill = 0;
    for (long q = 0; q < s.rowCount(); q++) {
      long at = loc.offset() + ((s.rowStart() + q) * cols + s.colStart() + row) * es;
      in.readFully(at, ByteBuffer.wrap(slab, fill, es));
      fill += es;
      if (fill + es > slab.length) {
        writeFully(sink, slab, fill);
        fill = 0;
      }
    }
    writeFully(sink, slab, fill);
  }

  private void copyRange(RangeReader in, long start, long length, WritableByteChannel sink) throws IOException {
    if (in.localFile() != null && length >= KERNEL_COPY_MIN_BYTES && sink instanceof FileRangeSink ranges
        && ranges.takesFileRanges()) {
      ranges.appendFileRange(in, start, length, null);
      return;
    }
    for (long done = 0; done < length; ) {
      int n = (int) Math.min(stream.capacity(), length - done);
      stream.clear().limit(n);
      in.readFully(start + done, stream);
      stream.flip();
      while (stream.hasRemaining()) {
        sink.write(stream);
      }
      done += n;
    }
  }

  /**
   * Writes through the assembler's direct buffer (the slab is never larger): a heap buffer handed to a file channel
   * would make the JDK allocate and cache a temporary direct buffer for each new length.
   */
  private void writeFully(WritableByteChannel sink, byte[] data, int length) throws IOException {
    stream.clear();
    stream.put(data, 0, length).flip();
    while (stream.hasRemaining()) {
      sink.write(stream);
    }
  }

  /** One reader per file; a computed tensor (LoRA merge, dequantisation) gets a reader of its own. */
  private RangeReader reader(TensorLocation loc) throws IOException {
    String key = loc.computed() != null ? "computed:" + loc.name() : loc.file();
    RangeReader r = readers.get(key);
    if (r == null) {
      r = loc.computed() != null ? loc.computed().open(loc) : CheckpointFiles.open(loc.file());
      readers.put(key, r);
    }
    return r;
  }

  @Override
  public void close() throws IOException {
    IOException first = null;
    for (RangeReader r : readers.values()) {
      try {
        r.close();
      } catch (IOException e) {
        first = first == null ? e : first;
      }
    }
    readers.clear();
    warmed.clear();
    if (first != null) {
      throw first;
    }
  }
}
