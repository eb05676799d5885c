package ckptbeam.io.compute;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.Bytes;
import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Float8E4M3;
import ckptbeam.io.tensor.Float4E2M1;
import ckptbeam.io.tensor.Float8E8M0;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** DeepSeek-V4's e8m0 scales, e2m1 codes, FP8 with e8m0 scales and MXFP4 (docs/formats.md §3.7, V4 spec §6.5). */
class DeepSeekV4QuantTest {
  @TempDir Path dir;

  @Test
  void e8m0IsAPowerOfTwoWithASubnormalBottomAndNaNTop() {
    assertEquals(1.0f, Float8E8M0.toFloat((byte) 0x7F));
    assertEquals(128f, Float8E8M0.toFloat((byte) 0x86));
    assertEquals(0x00400000, Float.floatToRawIntBits(Float8E8M0.toFloat((byte) 0)));
    assertEquals(0x7F000000, Float.floatToRawIntBits(Float8E8M0.toFloat((byte) 0xFE)));
    assertTrue(Float.isNaN(Float8E8M0.toFloat((byte) 0xFF)));
    for (int e = 1; e < 255; e++) {
      assertEquals(Math.scalb(1.0, e - 127), Float8E8M0.toFloat((byte) e), 0.0, "code " + e);
    }
  }

  @Test
  void e2m1TableKeepsMinusZero() {
    float[] want = {0f, 0.5f, 1f, 1.5f, 2f, 3f, 4f, 6f, -0f, -0.5f, -1f, -1.5f, -2f, -3f, -4f, -6f};
    for (int c = 0; c < 16; c++) {
      assertEquals(Float.floatToRawIntBits(want[c]), Float.floatToRawIntBits(Float4E2M1.toFloat(c)), "code " + c);
    }
  }

  /** The FP8 rows of the spec's vectors with e8m0 scales. */
  @Test
  void fp8WithE8m0ScalesMatchesTheVectors() throws IOException {
    byte[] codes = {0x7E, 0x38, (byte) 0xC5, 0x01};
    byte[] scales = {0x7F, 0x79, (byte) 0x86, 0x00};
    short[] want = {0x43E0, 0x3C80, (short) 0xC3D0, 0x0000};
    for (int i = 0; i < codes.length; i++) {
      assertEquals(want[i], fp8(new byte[] {codes[i]}, new byte[] {scales[i]})[0], "vector " + i);
    }
  }

  @Test
  void fp8WithE8m0ScalesRefusesNaNCodesAndOverflow() {
    IOException nan = assertThrows(IOException.class, () -> fp8(new byte[] {0x7F}, new byte[] {0x7F}));
    assertTrue(nan.getMessage().contains("must be finite"), nan.getMessage());
    IOException inf = assertThrows(IOException.class, () -> fp8(new byte[] {0x7E}, new byte[] {(byte) 0xFE}));
    assertTrue(inf.getMessage().contains("Infinity"), inf.getMessage());
  }

  /**
   * The reference tolerates float32 scales in a V4 release (two roundings, as V3); V4's refusal of non-finite results
   * holds there too, while V3's float32 path keeps DeepSeek's arithmetic (a NaN code reads as bf16 NaN).
   */
  @Test
  void fp8WithFloat32ScalesRefusesNonFiniteResultsForV4Only() throws IOException {
    Path f = dir.resolve("f32-scales");
    ByteBuffer scale = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, 1e38f);
    Files.write(f, Bytes.concat(new byte[] {0x7F, 0x38, 0x7E}, scale.array()));
    TensorLocation w = new TensorLocation("w.weight", f.toString(), DType.F8_E4M3, Shape.of(1, 3), 0);
    TensorLocation s = new TensorLocation("w.scale", f.toString(), DType.F32, Shape.of(1, 1), 3);
    short[] v3 = Bf16Reads.read(new Fp8Dequant(w, s, 128, 128).asBf16(), 1, 3);
    assertEquals(0x7FC0, v3[0] & 0xFFFF, "V3: NaN code read as NaN");
    assertEquals(0x7F80, v3[2] & 0x7FFF, "V3: 448 * 1e38 overflows to infinity");
    IOException nan = assertThrows(IOException.class,
        () -> Bf16Reads.read(new Fp8Dequant(w, s, 128, 128, true).asBf16(), 1, 3));
    assertTrue(nan.getMessage().contains("w.weight [0, 0] (code 127)") && nan.getMessage().contains("finite"),
        nan.getMessage());
    Files.write(f, Bytes.concat(new byte[] {0x38, 0x38, 0x7E}, scale.array()));
    IOException inf = assertThrows(IOException.class,
        () -> Bf16Reads.read(new Fp8Dequant(w, s, 128, 128, true).asBf16(), 1, 3));
    assertTrue(inf.getMessage().contains("w.weight [0, 2]") && inf.getMessage().contains("Infinity"),
        inf.getMessage());
  }

  /** Every finite (code, e8m0 scale) pair through the reader equals the formula, bf16(f32(code) · 2^(s−127)). */
  @Test
  void fp8AndMxfp4ReadersMatchTheFormulaForEveryPair() throws IOException {
    byte[] codes = new byte[256];
    for (int c = 0; c < 256; c++) {
      codes[c] = (byte) ((c & 0x7F) == 0x7F ? 0 : c); // no NaN codes
    }
    byte[] nibbles = new byte[16];
    for (int i = 0; i < 16; i++) {
      nibbles[i] = (byte) (i | (15 - i) << 4);
    }
    for (int s = 0; s < 255; s += 3) {
      float scale = Float8E8M0.toFloat((byte) s);
      if (s < 255 - 127 - 9) { // 448 · scale stays finite
        short[] fp8 = fp8(codes, new byte[] {(byte) s, (byte) s});
        for (int c = 0; c < 256; c++) {
          assertEquals(BFloat16.fromFloat(Float8E4M3.toFloat(codes[c]) * scale), fp8[c], "code " + c + " scale " + s);
        }
      }
      if (s < 255 - 127 - 2) { // 6 · scale stays finite
        short[] fp4 = mxfp4(Bytes.concat(nibbles, nibbles), 1, new byte[] {(byte) s, (byte) s});
        for (int k = 0; k < 64; k++) {
          int b = nibbles[(k / 2) % 16] & 0xFF;
          float x = Float4E2M1.toFloat((k & 1) == 0 ? b & 0xF : b >> 4);
          assertEquals(BFloat16.fromFloat(x * scale), fp4[k], "element " + k + " scale " + s);
        }
      }
    }
  }

  /**
   * At the top scales, where products start to overflow, the readers refuse exactly the pairs whose product is not
   * finite and return every other one exactly (they check per scale group or per element, not by formula).
   */
  @Test
  void theReadersRefuseExactlyTheNonFinitePairsAtTheTopScales() throws IOException {
    for (int s = 240; s < 256; s++) {
      float scale = Float8E8M0.toFloat((byte) s);
      for (int c = 0; c < 256; c++) {
        float y = Float8E4M3.toFloat((byte) c) * scale;
        byte[] code = {(byte) c};
        byte[] sc = {(byte) s};
        if (Float.isFinite(y)) {
          assertEquals(BFloat16.fromFloat(y), fp8(code, sc)[0], "fp8 code " + c + " scale " + s);
        } else {
          assertThrows(CheckpointFormatException.class, () -> fp8(code, sc), "fp8 code " + c + " scale " + s);
        }
      }
      for (int c = 0; c < 16; c++) {
        byte[] packed = new byte[16];
        packed[5] = (byte) (c << 4); // element 11 is the nibble; the others are +0
        float y = Float4E2M1.toFloat(c) * scale;
        byte[] sc = {(byte) s};
        if (Float.isFinite(y)) {
          assertEquals(BFloat16.fromFloat(y), mxfp4(packed, 1, sc)[11], "e2m1 " + c + " scale " + s);
        } else {
          assertThrows(CheckpointFormatException.class, () -> mxfp4(packed, 1, sc), "e2m1 " + c + " scale " + s);
        }
      }
    }
  }

  /** The MXFP4 rows of the spec's vectors: low nibble first, −0 kept. */
  @Test
  void mxfp4MatchesTheVectors() throws IOException {
    // one row of 32 values (16 bytes): bytes 0x1F, 0x80, 0x7A then zeros; scale 2.0
    byte[] packed = new byte[16];
    packed[0] = 0x1F;
    packed[1] = (byte) 0x80;
    packed[2] = 0x7A;
    short[] got = mxfp4(packed, 1, new byte[] {(byte) 0x80});
    assertEquals((short) 0xC140, got[0]);
    assertEquals((short) 0x3F80, got[1]);
    assertEquals((short) 0x0000, got[2]);
    assertEquals((short) 0x8000, got[3]);
    assertEquals((short) 0xC000, got[4]); // -1 x 2
    assertEquals((short) 0x4140, got[5]); // 6 x 2
    // the spec's scale 1/16 for byte 0x7A
    short[] sixteenth = mxfp4(packed, 1, new byte[] {0x7B});
    assertEquals((short) 0xBD80, sixteenth[4]);
    assertEquals((short) 0x3EC0, sixteenth[5]);
  }

  @Test
  void mxfp4UsesOneScalePerThirtyTwoInputsOfARow() throws IOException {
    // 2 rows x 64 values: every code 2 (1.0); scales row 0 = (1, 2), row 1 = (4, 8)
    byte[] packed = new byte[2 * 32];
    Arrays.fill(packed, (byte) 0x22);
    short[] got = mxfp4(packed, 2, new byte[] {0x7F, (byte) 0x80, (byte) 0x81, (byte) 0x82});
    assertEquals((short) 0x3F80, got[31]);
    assertEquals((short) 0x4000, got[32]);
    assertEquals((short) 0x4080, got[64]);
    assertEquals((short) 0x4100, got[127]);
  }

  /** Ranges that start and end inside a byte and cross scale groups read the same values as the whole tensor. */
  @Test
  void mxfp4ReadsAnyRangeOfTheView() throws IOException {
    byte[] packed = new byte[2 * 32];
    for (int i = 0; i < packed.length; i++) {
      packed[i] = (byte) (i * 37 + 11);
    }
    byte[] scales = {0x7F, (byte) 0x80, 0x7E, (byte) 0x81};
    short[] whole = mxfp4(packed, 2, scales);
    Path f = dir.resolve("r" + System.nanoTime());
    Files.write(f, Bytes.concat(packed, scales));
    TensorLocation w = new TensorLocation("e.weight", f.toString(), DType.I8, Shape.of(2, 32), 0);
    TensorLocation sc = new TensorLocation("e.scale", f.toString(), DType.F8_E8M0, Shape.of(2, 2), packed.length);
    TensorLocation bf16 = new Mxfp4Dequant(w, sc).asBf16();
    for (int[] r : new int[][] {{3, 58}, {1, 1}, {31, 3}, {64, 63}, {0, 127}}) {
      try (var reader = bf16.computed().open(bf16)) {
        ByteBuffer b = ByteBuffer.allocate(2 * r[1]).order(ByteOrder.LITTLE_ENDIAN);
        reader.readFully(2L * r[0], b);
        for (int i = 0; i < r[1]; i++) {
          assertEquals(whole[r[0] + i], b.getShort(2 * i), "element " + (r[0] + i) + " of range " + r[0]);
        }
      }
    }
  }

  /**
   * FP8 with e8m0 scales in small blocks (2 rows × 3 columns, a partial block at each edge of a [5, 7] weight): a
   * read starting mid-block or mid-row, or spanning rows, gives each element its own block's scale.
   */
  @Test
  void fp8ReadsAnyRangeWithEachElementsBlockScale() throws IOException {
    byte[] codes = new byte[5 * 7];
    for (int i = 0; i < codes.length; i++) {
      codes[i] = (byte) ((i * 29 + 3) & 0x7F) == 0x7F ? 0 : (byte) (i * 29 + 3); // no NaN codes
    }
    byte[] scales = new byte[3 * 3];
    for (int i = 0; i < scales.length; i++) {
      scales[i] = (byte) (120 + i);
    }
    Path f = dir.resolve("b" + System.nanoTime());
    Files.write(f, Bytes.concat(codes, scales));
    TensorLocation w = new TensorLocation("w.weight", f.toString(), DType.F8_E4M3, Shape.of(5, 7), 0);
    TensorLocation sc = new TensorLocation("w.scale", f.toString(), DType.F8_E8M0, Shape.of(3, 3), codes.length);
    TensorLocation bf16 = new Fp8Dequant(w, sc, 2, 3).asBf16();
    for (int[] r : new int[][] {{0, 35}, {1, 1}, {2, 9}, {4, 20}, {13, 8}, {20, 15}, {34, 1}}) {
      try (var reader = bf16.computed().open(bf16)) {
        ByteBuffer b = ByteBuffer.allocate(2 * r[1]).order(ByteOrder.LITTLE_ENDIAN);
        reader.readFully(2L * r[0], b);
        for (int i = 0; i < r[1]; i++) {
          int e = r[0] + i;
          float scale = Float8E8M0.toFloat(scales[(e / 7) / 2 * 3 + (e % 7) / 3]);
          assertEquals(BFloat16.fromFloat(Float8E4M3.toFloat(codes[e]) * scale), b.getShort(2 * i),
              "element " + e + " of range " + r[0] + "+" + r[1]);
        }
      }
    }
  }

  @Test
  void mxfp4RefusesAMisShapedScaleAndANaNScale() {
    IOException shape = assertThrows(CheckpointFormatException.class, () -> mxfp4(new byte[16], 1, new byte[2]));
    assertTrue(shape.getMessage().contains("does not fit MXFP4"), shape.getMessage());
    IOException nan = assertThrows(IOException.class, () -> mxfp4(new byte[16], 1, new byte[] {(byte) 0xFF}));
    assertTrue(nan.getMessage().contains("must be finite"), nan.getMessage());
  }

  private short[] fp8(byte[] codes, byte[] scales) throws IOException {
    Path f = dir.resolve("f" + System.nanoTime());
    Files.write(f, Bytes.concat(codes, scales));
    TensorLocation w = new TensorLocation("w.weight", f.toString(), DType.F8_E4M3, Shape.of(1, codes.length), 0);
    TensorLocation s = new TensorLocation("w.scale", f.toString(), DType.F8_E8M0, Shape.of(1, scales.length),
        codes.length);
    return Bf16Reads.read(new Fp8Dequant(w, s, 128, 128).asBf16(), 1, codes.length);
  }

  private short[] mxfp4(byte[] packed, int rows, byte[] scales) throws IOException {
    Path f = dir.resolve("m" + System.nanoTime());
    Files.write(f, Bytes.concat(packed, scales));
    int np = packed.length / rows;
    TensorLocation w = new TensorLocation("e.weight", f.toString(), DType.I8, Shape.of(rows, np), 0);
    TensorLocation s = new TensorLocation("e.scale", f.toString(), DType.F8_E8M0,
        Shape.of(rows, scales.length / rows), packed.length);
    return Bf16Reads.read(new Mxfp4Dequant(w, s).asBf16(), rows, 2 * np);
  }
}
