package ckptbeam.io;

import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.TensorBytes;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.WritableByteChannel;

/** Test helpers for tensors whose bytes are at hand. */
public final class Bytes {
  private Bytes() {}

  public static TensorBytes of(byte[] data) {
    return (WritableByteChannel sink) -> {
      ByteBuffer b = ByteBuffer.wrap(data);
      while (b.hasRemaining()) {
        sink.write(b);
      }
    };
  }

  public static byte[] bf16(float... values) {
    byte[] out = new byte[values.length * 2];
    for (int i = 0; i < values.length; i++) {
      short s = BFloat16.fromFloat(values[i]);
      out[2 * i] = (byte) s;
      out[2 * i + 1] = (byte) (s >> 8);
    }
    return out;
  }

  public static byte[] f32(float... values) {
    ByteBuffer b = ByteBuffer.allocate(values.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (float v : values) {
      b.putFloat(v);
    }
    return b.array();
  }

  public static byte[] concat(byte[]... parts) {
    int n = 0;
    for (byte[] p : parts) {
      n += p.length;
    }
    ByteBuffer b = ByteBuffer.allocate(n);
    for (byte[] p : parts) {
      b.put(p);
    }
    return b.array();
  }

}
