package ckptbeam.io.tensor;

import java.lang.invoke.MethodHandles;
import java.lang.invoke.VarHandle;
import java.nio.ByteOrder;

/**
 * Inner loops the conversions run (the assembler's transpose, the bf16 widening of LoRA factors), kept apart so that
 * the JMH benchmarks measure exactly the code in use.
 */
public final class Kernels {
  /**
   * Side of the square tiles of the blocked transpose. DeepSeek's dimensions are powers of two, so source and
   * destination rows are 4 KiB apart and map to the same L1 sets: 16 rows per tile stay resident, 64 did not
   * (JMH, 2048 x 2048 bf16: 1.13 GB/s with 16, 0.67 GB/s with 64, 0.98 GB/s with 8).
   */
  public static final int TILE = 16;
  /** 16-bit loads and stores on byte arrays (one move per bf16 element, not two byte moves). */
  private static final VarHandle SHORTS =
      MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);

  private Kernels() {}

  /**
   * Transposes a block: {@code m} source rows of {@code n} elements each ({@code src}, rows {@code srcRowBytes}
   * apart) become {@code n} output rows; element (q, j) goes to {@code dst[j * dstRowBytes + dstOffset + q * es]}.
   */
  public static void transpose(byte[] src, int srcRowBytes, int m, int n, int es, byte[] dst, int dstRowBytes,
      int dstOffset) {
    transpose(src, 0, srcRowBytes, m, n, es, dst, dstRowBytes, dstOffset);
  }

  /** {@link #transpose(byte[], int, int, int, int, byte[], int, int)} of the block starting at {@code srcOffset}. */
  public static void transpose(byte[] src, int srcOffset, int srcRowBytes, int m, int n, int es, byte[] dst,
      int dstRowBytes, int dstOffset) {
    for (int jt = 0; jt < n; jt += TILE) {
      int jEnd = Math.min(n, jt + TILE);
      for (int qt = 0; qt < m; qt += TILE) {
        int qEnd = Math.min(m, qt + TILE);
        for (int j = jt; j < jEnd; j++) {
          int d = j * dstRowBytes + dstOffset + qt * es;
          int s = srcOffset + qt * srcRowBytes + j * es;
          if (es == 2) {
            for (int q = qt; q < qEnd; q++, d += 2, s += srcRowBytes) {
              SHORTS.set(dst, d, (short) SHORTS.get(src, s));
            }
          } else {
            for (int q = qt; q < qEnd; q++, d += es, s += srcRowBytes) {
              System.arraycopy(src, s, dst, d, es);
            }
          }
        }
      }
    }
  }

  /** Little-endian bf16 → float32. */
  public static void bf16ToF32(byte[] src, float[] dst, int count) {
    for (int i = 0; i < count; i++) {
      dst[i] = Float.intBitsToFloat(((src[2 * i] & 0xFF) | (src[2 * i + 1] & 0xFF) << 8) << 16);
    }
  }
}
