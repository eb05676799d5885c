package ckptbeam.io.tensor;

/** float8 e4m3fn (docs/formats.md §3.4): bias 7, no infinities, 0x7F / 0xFF are NaN; max 448. */
public final class Float8E4M3 {
  private static final float[] TABLE = new float[256];

  static {
    for (int b = 0; b < 256; b++) {
      int sign = (b >> 7) & 1;
      int e = (b >> 3) & 0xF;
      int m = b & 7;
      float v;
      if (e == 15 && m == 7) {
        v = Float.NaN;
      } else if (e == 0) {
        v = Math.scalb((float) m, -9);
      } else {
        v = Math.scalb(1f + m / 8f, e - 7);
      }
      TABLE[b] = sign == 1 ? -v : v;
    }
  }

  private Float8E4M3() {}

  /** The exact float32 value of a code. */
  public static float toFloat(byte code) {
    return TABLE[code & 0xFF];
  }
}
