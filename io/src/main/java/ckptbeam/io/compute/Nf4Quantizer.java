package ckptbeam.io.compute;

import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorBytes;
import ckptbeam.io.tensor.TensorSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * Replaces one tensor by its NF4 entries (docs/mapping.md §7.1, §7.6): the packed data under the key, then
 * {@code .absmax}, {@code .quant_map}, for the bitsandbytes format {@code .nested_absmax} and
 * {@code .nested_quant_map}, and {@code .quant_state.bitsandbytes__nf4}. Each entry's bytes are produced by streaming
 * the source tensor again through a block collector, so memory stays constant whatever the tensor's size (the nested
 * statistics take two passes: the mean of all absmax values, then the 256-blocks).
 */
public final class Nf4Quantizer {
  private final Nf4.Format format;
  private final DType dtype;
  private final Shape shape;
  private final TensorBytes source;
  private final long numel;
  private final long blocks;

  public Nf4Quantizer(Nf4.Format format, DType dtype, Shape shape, TensorBytes source) throws IOException {
    if (dtype != DType.BF16 && dtype != DType.F32) {
      throw new IOException("NF4 quantisation of a " + dtype + " tensor is not supported");
    }
    this.format = format;
    this.dtype = dtype;
    this.shape = shape;
    this.source = source;
    this.numel = shape.numel();
    this.blocks = (numel + Nf4.BLOCK - 1) / Nf4.BLOCK;
    if (format == Nf4.Format.NPU && numel % Nf4.BLOCK != 0) {
      throw new IOException("NF4 (MindSpeed's NPU format) needs a multiple of 64 elements; the tensor has " + numel);
    }
  }

  /** The entries, in {@code as_dict(packed=True)} order, under {@code key}. */
  public List<TensorSpec> entries(String key) {
    List<TensorSpec> out = new ArrayList<>();
    long packed = (numel + 1) / 2;
    out.add(new TensorSpec(key, DType.U8, format == Nf4.Format.NPU ? Shape.of(packed) : Shape.of(packed, 1),
        this::writePacked));
    if (format == Nf4.Format.NPU) {
      out.add(new TensorSpec(key + ".absmax", dtype, Shape.of(blocks, 1), this::writeAbsmax));
      out.add(new TensorSpec(key + ".quant_map", DType.F32, Shape.of(16), floats(Nf4.CODE)));
    } else {
      out.add(new TensorSpec(key + ".absmax", DType.U8, Shape.of(blocks), this::writeNestedIndices));
      out.add(new TensorSpec(key + ".quant_map", DType.F32, Shape.of(16), floats(Nf4.CODE)));
      out.add(new TensorSpec(key + ".nested_absmax", DType.F32,
          Shape.of((blocks + Nf4.NESTED_BLOCK - 1) / Nf4.NESTED_BLOCK), this::writeNestedAbsmax));
      out.add(new TensorSpec(key + ".nested_quant_map", DType.F32, Shape.of(256), floats(Nf4.dynamicMap())));
    }
    byte[] state;
    try {
      state = Nf4.stateJson(dtype.torchName(), shape.dims(), format == Nf4.Format.NPU ? null : offset())
          .getBytes(StandardCharsets.US_ASCII);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
    out.add(new TensorSpec(key + ".quant_state.bitsandbytes__nf4", DType.U8, Shape.of(state.length),
        sink -> sink.write(ByteBuffer.wrap(state))));
    return out;
  }

  /** Visits every 64-element block of the source: values widened to float, and the block's absmax. */
  private interface BlockVisitor {
    void block(float[] x, int n, float absmax, boolean last) throws IOException;
  }

  private void forEachBlock(BlockVisitor v) throws IOException {
    BlockCollector collector = new BlockCollector(dtype.size(), numel, v);
    source.writeTo(collector);
    if (collector.seen != numel) {
      throw new IOException("NF4: the source produced " + collector.seen + " elements, expected " + numel);
    }
  }

  /**
   * Receives the source's bytes in pieces of any size, decodes them to floats (an element split across two pieces
   * is carried over) and hands each full 64-element block, and the final partial one, to the visitor.
   */
  private static final class BlockCollector implements WritableByteChannel {
    private final int es;
    private final long numel;
    private final BlockVisitor visitor;
    private final float[] x = new float[Nf4.BLOCK];
    private final byte[] carry;
    private int fill;
    private int carried;
    long seen;

    BlockCollector(int es, long numel, BlockVisitor visitor) {
      this.es = es;
      this.numel = numel;
      this.visitor = visitor;
      this.carry = new byte[es];
    }

    @Override
    public int write(ByteBuffer src) throws IOException {
      int n = src.remaining();
      ByteBuffer b = src.order(ByteOrder.LITTLE_ENDIAN);
      while (b.hasRemaining()) {
        if (carried == 0 && b.remaining() >= es) {
          // the common case: whole elements, decoded straight from the buffer
          add(es == 2 ? BFloat16.toFloat(b.getShort()) : b.getFloat());
          continue;
        }
        carry[carried++] = b.get();
        if (carried < es) {
          continue;
        }
        carried = 0;
        add(es == 2 ? BFloat16.toFloat((short) ((carry[0] & 0xFF) | (carry[1] & 0xFF) << 8))
            : Float.intBitsToFloat((carry[0] & 0xFF) | (carry[1] & 0xFF) << 8 | (carry[2] & 0xFF) << 16
                | (carry[3] & 0xFF) << 24));
      }
      return n;
    }

    private void add(float value) throws IOException {
      x[fill++] = value;
      seen++;
      if (fill == Nf4.BLOCK || seen == numel) {
        float absmax = 0;
        for (int i = 0; i < fill; i++) {
          absmax = Math.max(absmax, Math.abs(x[i]));
        }
        visitor.block(x, fill, absmax, seen == numel);
        fill = 0;
      }
    }

    @Override
    public boolean isOpen() {
      return true;
    }

    @Override
    public void close() {}
  }

  private void writePacked(WritableByteChannel sink) throws IOException {
    ByteBuffer out = ByteBuffer.allocate(1 << 16);
    int[] idx = new int[Nf4.BLOCK + 1];
    forEachBlock((x, n, absmax, last) -> {
      Nf4.indices(format, x, n, absmax, last && n < Nf4.BLOCK, idx);
      int count = n;
      if (count % 2 == 1) {
        idx[count++] = 7; // an odd tensor is padded with 0.0, which encodes as code 7
      }
      for (int i = 0; i < count; i += 2) {
        if (!out.hasRemaining()) {
          flush(out, sink);
        }
        out.put(Nf4.pack(format, idx[i], idx[i + 1]));
      }
    });
    flush(out, sink);
  }

  private void writeAbsmax(WritableByteChannel sink) throws IOException {
    ByteBuffer out = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    forEachBlock((x, n, absmax, last) -> {
      if (out.remaining() < 4) {
        flush(out, sink);
      }
      if (dtype == DType.BF16) {
        out.putShort(BFloat16.fromFloat(absmax)); // exact: the max of bf16 values is a bf16 value
      } else {
        out.putFloat(absmax);
      }
    });
    flush(out, sink);
  }

  /** Format C: the mean of all absmax values (stored absmax of a partial last block is clamped to 1e-38). */
  private float offset() throws IOException {
    double[] sum = {0};
    forEachBlock((x, n, absmax, last) -> sum[0] += storedAbsmax(absmax, last && n < Nf4.BLOCK));
    return (float) (sum[0] / blocks);
  }

  private static float storedAbsmax(float absmax, boolean partial) {
    return partial ? Math.max(absmax, 1e-38f) : absmax;
  }

  /** Runs the centred absmax values through 256-blocks: {@code visitor(values, n, absmax2)}. */
  private void forEachNestedBlock(NestedVisitor visitor) throws IOException {
    float offset = offset();
    float[] centred = new float[Nf4.NESTED_BLOCK];
    int[] fill = {0};
    long[] done = {0};
    forEachBlock((x, n, absmax, last) -> {
      centred[fill[0]++] = storedAbsmax(absmax, last && n < Nf4.BLOCK) - offset;
      done[0]++;
      if (fill[0] == Nf4.NESTED_BLOCK || done[0] == blocks) {
        float absmax2 = 0;
        for (int i = 0; i < fill[0]; i++) {
          absmax2 = Math.max(absmax2, Math.abs(centred[i]));
        }
        visitor.block(centred, fill[0], absmax2);
        fill[0] = 0;
      }
    });
  }

  private interface NestedVisitor {
    void block(float[] centred, int n, float absmax2) throws IOException;
  }

  private void writeNestedIndices(WritableByteChannel sink) throws IOException {
    ByteBuffer out = ByteBuffer.allocate(1 << 16);
    forEachNestedBlock((centred, n, absmax2) -> {
      for (int i = 0; i < n; i++) {
        if (!out.hasRemaining()) {
          flush(out, sink);
        }
        out.put((byte) Nf4.nestedIndex(centred[i], absmax2));
      }
    });
    flush(out, sink);
  }

  private void writeNestedAbsmax(WritableByteChannel sink) throws IOException {
    ByteBuffer out = ByteBuffer.allocate(1 << 16).order(ByteOrder.LITTLE_ENDIAN);
    forEachNestedBlock((centred, n, absmax2) -> {
      if (out.remaining() < 4) {
        flush(out, sink);
      }
      out.putFloat(absmax2);
    });
    flush(out, sink);
  }

  private static TensorBytes floats(float[] values) {
    return sink -> {
      ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
      for (float v : values) {
        b.putFloat(v);
      }
      b.flip();
      while (b.hasRemaining()) {
        sink.write(b);
      }
    };
  }

  private static void flush(ByteBuffer out, WritableByteChannel sink) throws IOException {
    out.flip();
    while (out.hasRemaining()) {
      sink.write(out);
    }
    out.clear();
  }
}
