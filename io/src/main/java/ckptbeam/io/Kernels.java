package ckptbeam.io;

/** The byte-moving inner loops of the assembler, kept apart so that the JMH benchmarks measure exactly them. */
public final class Kernels {
  /** Side of the square tiles of the blocked transpose: 64 x 64 two-byte elements stay in L1. */
  public static final int TILE = 64;

  private Kernels() {}

  /**
   * Transposes a block: {@code m} source rows of {@code n} elements each ({@code src}, rows {@code srcRowBytes}
   * apart) become {@code n} output rows; element (q, j) goes to {@code dst[j * dstRowBytes + dstOffset + q * es]}.
   */
  public static void transpose(byte[] src, int srcRowBytes, int m, int n, int es, byte[] dst, int dstRowBytes,
      int dstOffset) {
    for (int jt = 0; jt < n; jt += TILE) {
      int jEnd = Math.min(n, jt + TILE);
      for (int qt = 0; qt < m; qt += TILE) {
        int qEnd = Math.min(m, qt + TILE);
        for (int j = jt; j < jEnd; j++) {
          int d = j * dstRowBytes + dstOffset + qt * es;
          int s = qt * srcRowBytes + j * es;
          if (es == 2) {
            for (int q = qt; q < qEnd; q++, d += 2, s += srcRowBytes) {
              dst[d] = src[s];
              dst[d + 1] = src[s + 1];
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

  /** Copies columns {@code [colStart, colStart+width)} (in bytes) of {@code rows} rows of {@code src} to dense rows. */
  public static void columnSlice(byte[] src, int srcRowBytes, int rows, int colStartBytes, int widthBytes, byte[] dst,
      int dstRowBytes, int dstOffset) {
    for (int r = 0; r < rows; r++) {
      System.arraycopy(src, r * srcRowBytes + colStartBytes, dst, r * dstRowBytes + dstOffset, widthBytes);
    }
  }

  /** Little-endian bf16 → float32. */
  public static void bf16ToF32(byte[] src, float[] dst, int count) {
    for (int i = 0; i < count; i++) {
      dst[i] = Float.intBitsToFloat(((src[2 * i] & 0xFF) | (src[2 * i + 1] & 0xFF) << 8) << 16);
    }
  }

  /** float32 → little-endian bf16, round to nearest even (formats.md §3.5). */
  public static void f32ToBf16(float[] src, byte[] dst, int count) {
    for (int i = 0; i < count; i++) {
      short s = BFloat16.fromFloat(src[i]);
      dst[2 * i] = (byte) s;
      dst[2 * i + 1] = (byte) (s >> 8);
    }
  }
}
