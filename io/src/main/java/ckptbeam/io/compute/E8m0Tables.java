package ckptbeam.io.compute;

import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.Float4E2M1;
import ckptbeam.io.tensor.Float8E4M3;
import ckptbeam.io.tensor.Float8E8M0;

/**
 * The bf16 result of every (e8m0 scale, code) pair, computed once with the readers' own arithmetic
 * ({@code bf16(f32(code) · f32(scale))}), so a dequantising read is a table lookup per element, bit for bit the same.
 * The readers refuse a non-finite product: FP8's by its bf16 exponent (all ones; e4m3 · 2^k is exact in bf16, so
 * none rounds to infinity), MXFP4's by the finiteness kept beside each entry, checked only above
 * {@link #FP4_FINITE_SCALES}.
 */
final class E8m0Tables {
  /** [scale][nibble] → bf16 of e2m1 × 2^(scale−127). */
  static final short[] FP4 = new short[256 * 16];
  /** [scale][e4m3 code] → bf16 of e4m3 × 2^(scale−127). */
  static final short[] FP8 = new short[256 * 256];
  /** Whether the entry of the same index is finite. */
  static final boolean[] FP4_FINITE = new boolean[256 * 16];
  /**
   * [scale][packed byte] → the two bf16 values of the byte's nibbles (low nibble first) as one little-endian int:
   * a whole MXFP4 byte in one lookup and one store.
   */
  static final int[] FP4_PAIR = new int[256 * 256];
  static final boolean[] FP4_PAIR_FINITE = new boolean[256 * 256];
  /**
   * The largest scale code whose products with every e2m1 value are finite (6 · 2^(s−127) below 2^128: 252); a
   * reader checks each byte only under larger codes. Computed from the table, and so checked by its construction.
   */
  static final int FP4_FINITE_SCALES;

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
        FP8[s * 256 + c] = BFloat16.fromFloat(y);
      }
    }
    int s = 0;
    while (s < 255 && allFinite(FP4_FINITE, (s + 1) * 16, 16)) {
      s++;
    }
    FP4_FINITE_SCALES = s;
  }

  private static boolean allFinite(boolean[] finite, int from, int n) {
    for (int i = from; i < from + n; i++) {
      if (!finite[i]) {
        return false;
      }
    }
    return true;
  }

  private E8m0Tables() {}
}
