package ckptbeam.io.tensor;

/**
 * FP4 e2m1, DeepSeek-V4's MXFP4 experts (docs/formats.md §3.7): two codes per byte, the low nibble first; sign bit 3,
 * exponent bits 2–1 (bias 1), mantissa bit 0. Code 8 is −0.0, as in MindSpeed's dequantisation table.
 */
public final class Float4E2M1 {
  private static final float[] TABLE = {0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f};

  private Float4E2M1() {}

  /** The value of a 4-bit code (0 … 15). */
  public static float toFloat(int code) {
    return TABLE[code & 0xF];
  }
}
