package ckptbeam.io.tensor;

/** bfloat16 ⇄ float32 exactly as c10 converts them (docs/formats.md §3.5). */
public final class BFloat16 {
  /** The quiet NaN c10's scalar constructor produces. */
  public static final short NAN = (short) 0x7FC0;

  private BFloat16() {}

  /** Exact widening: the bf16 bits become the high half of the float. */
  public static float toFloat(short bits) {
    return Float.intBitsToFloat((bits & 0xFFFF) << 16);
  }

  /** Narrowing with round-to-nearest-even; overflow goes to ±Inf, subnormals are kept, NaN becomes 0x7FC0. */
  public static short fromFloat(float f) {
    if (Float.isNaN(f)) {
      return NAN;
    }
    int u = Float.floatToRawIntBits(f);
    int bias = 0x7FFF + ((u >>> 16) & 1);
    return (short) ((u + bias) >>> 16);
  }
}
