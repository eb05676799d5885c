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
   * destination rows are 4 KiB apart and map to the same L1 sets: few rows per tile must stay resident. JMH, 2048 x
   * 2048 bf16 with the 4 x 4 register blocks: 8 → 2.98 ms (2.8 GB/s), 4 → 4.8 ms, 16 → 5.4 ms, 32 → 7.1 ms; the
   * element-by-element kernel before them: 6.5 ms at 16.
   */
  public static final int TILE = 8;
  /** 16-bit loads and stores on byte arrays (one move per bf16 element, not two byte moves). */
  private static final VarHandle SHORTS =
      MethodHandles.byteArrayViewVarHandle(short[].class, ByteOrder.LITTLE_ENDIAN);

  /** 64-bit loads and stores on byte arrays, for the 4 x 4 blocks of the 16-bit transpose. */
  private static final VarHandle LONGS =
      MethodHandles.byteArrayViewVarHandle(long[].class, ByteOrder.LITTLE_ENDIAN);
  private static final long EVEN16 = 0x0000FFFF0000FFFFL;
  private static final long ODD16 = 0xFFFF0000FFFF0000L;
  private static final long LOW32 = 0x00000000FFFFFFFFL;
  private static final long HIGH32 = 0xFFFFFFFF00000000L;

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
        if (es == 2) {
          transposeTile16(src, srcOffset, srcRowBytes, qt, qEnd, jt, jEnd, dst, dstRowBytes, dstOffset);
          continue;
        }
        for (int j = jt; j < jEnd; j++) {
          int d = j * dstRowBytes + dstOffset + qt * es;
          int s = srcOffset + qt * srcRowBytes + j * es;
          for (int q = qt; q < qEnd; q++, d += es, s += srcRowBytes) {
            System.arraycopy(src, s, dst, d, es);
          }
        }
      }
    }
  }

  /**
   * One tile of 16-bit elements: 4 x 4 blocks moved as four 64-bit loads and four 64-bit stores, transposed in
   * registers (two rounds of interleaving 16-bit, then 32-bit halves); the edges element by element. Four times fewer
   * memory operations than one 16-bit move per element (JMH, 2048 x 2048 bf16: 1.29 GB/s element by element).
   */
  private static void transposeTile16(byte[] src, int srcOffset, int srcRowBytes, int qt, int qEnd, int jt, int jEnd,
      byte[] dst, int dstRowBytes, int dstOffset) {
    int q4 = qt + (qEnd - qt) / 4 * 4;
    int j4 = jt + (jEnd - jt) / 4 * 4;
    for (int q = qt; q < q4; q += 4) {
      int s0 = srcOffset + q * srcRowBytes;
      for (int j = jt; j < j4; j += 4) {
        int s = s0 + j * 2;
        long r0 = (long) LONGS.get(src, s);
        long r1 = (long) LONGS.get(src, s + srcRowBytes);
        long r2 = (long) LONGS.get(src, s + 2 * srcRowBytes);
        long r3 = (long) LONGS.get(src, s + 3 * srcRowBytes);
        // element k of row r sits at bits 16k; t01e = [r0.0, r1.0, r0.2, r1.2], t01o = [r0.1, r1.1, r0.3, r1.3]
        long t01e = (r0 & EVEN16) | ((r1 & EVEN16) << 16);
        long t01o = ((r0 >>> 16) & EVEN16) | (r1 & ODD16);
        long t23e = (r2 & EVEN16) | ((r3 & EVEN16) << 16);
        long t23o = ((r2 >>> 16) & EVEN16) | (r3 & ODD16);
        int d = j * dstRowBytes + dstOffset + q * 2;
        LONGS.set(dst, d, (t01e & LOW32) | (t23e << 32));
        LONGS.set(dst, d + dstRowBytes, (t01o & LOW32) | (t23o << 32));
        LONGS.set(dst, d + 2 * dstRowBytes, (t01e >>> 32) | (t23e & HIGH32));
        LONGS.set(dst, d + 3 * dstRowBytes, (t01o >>> 32) | (t23o & HIGH32));
      }
    }
    // the right edge (columns j4..jEnd of every row) and the bottom edge (rows q4..qEnd of the other columns)
    for (int j = jt; j < jEnd; j++) {
      int qFrom = j < j4 ? q4 : qt;
      int d = j * dstRowBytes + dstOffset + qFrom * 2;
      int s = srcOffset + qFrom * srcRowBytes + j * 2;
      for (int q = qFrom; q < qEnd; q++, d += 2, s += srcRowBytes) {
        SHORTS.set(dst, d, (short) SHORTS.get(src, s));
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
