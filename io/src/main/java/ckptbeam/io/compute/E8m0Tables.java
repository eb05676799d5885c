package ckptbeam.io.compute;

import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.Float4E2M1;
import ckptbeam.io.tensor.Float8E4M3;
import ckptbeam.io.tensor.Float8E8M0;

/**
 * The bf16 result of every (e8m0 scale, code) pair, computed once with the readers' own arithmetic
 * ({@code bf16(f32(code) · f32(scale))}), so a dequantising read is a table lookup per element, bit for bit the same.
 * Whether a product is finite is kept beside it; the readers refuse a non-finite one.
 */
final class E8m0Tables {
  /** [scale][nibble] → bf16 of e2m1 × 2^(scale−127). */
  static final short[] FP4 = new short[256 * 16];
  /** [scale][e4m3 code] → bf16 of e4m3 × 2^(scale−127). */
  static final short[] FP8 = new short[256 * 256];
  /** Whether the entry of the same index is finite. */
  static final boolean[] FP4_FINITE = new boolean[256 * 16];
  static final boolean[] FP8_FINITE = new boolean[256 * 256];
  /**
   * [scale][packed byte] → the two bf16 values of the byte's nibbles (low nibble first) as one little-endian int:
   * a whole MXFP4 byte in one lookup and one store.
   */
  static final int[] FP4_PAIR = new int[256 * 256];
  static final boolean[] FP4_PAIR_FINITE = new boolean[256 * 256];

  static {
    for (int s = 0; s < 256; s++) {
      float scale = Float8E8M0.toFloat((byte) s);
      for (int c = 0; c < 16; c++) {
        float y = Float4E2M1.toFloat(c) * scale;
        FP4_FINITE[s * 16 + c] = Float.isFinite(y);
        FP4[s * 16 + c] = BFloat16.fromFloat(y);
      }
      for (int b = 0; b < 256; b++) {
        int lo = s * 16 + (b & 0xF);
        int hi = s * 16 + (b >> 4);
        FP4_PAIR[s * 256 + b] = (FP4[lo] & 0xFFFF) | FP4[hi] << 16;
        FP4_PAIR_FINITE[s * 256 + b] = FP4_FINITE[lo] && FP4_FINITE[hi];
      }
      for (int c = 0; c < 256; c++) {
        float y = Float8E4M3.toFloat((byte) c) * scale;
        FP8_FINITE[s * 256 + c] = Float.isFinite(y);
        FP8[s * 256 + c] = BFloat16.fromFloat(y);
      }
    }
  }

  private E8m0Tables() {}
}
