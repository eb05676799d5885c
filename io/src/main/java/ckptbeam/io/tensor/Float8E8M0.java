package ckptbeam.io.tensor;

/**
 * float8 e8m0fnu, DeepSeek-V4's block scales (docs/formats.md §3.7): an unsigned exponent, the value 2^(e−127) for
 * e = 0 … 254 (e = 0 is the float32 subnormal 2^−127), 255 NaN; no sign, no zero.
 */
public final class Float8E8M0 {
  public static final int NAN_CODE = 0xFF;

  private Float8E8M0() {}

  /** The exact float32 value of a code (NaN for 255). */
  public static float toFloat(byte code) {
    int e = code & 0xFF;
    if (e == NAN_CODE) {
      return Float.NaN;
    }
    return e == 0 ? Float.intBitsToFloat(0x00400000) : Float.intBitsToFloat(e << 23);
  }
}
