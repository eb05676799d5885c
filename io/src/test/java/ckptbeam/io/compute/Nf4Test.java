package ckptbeam.io.compute;

import ckptbeam.io.Bytes;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorSpec;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.nio.charset.StandardCharsets;
import java.util.HexFormat;
import java.util.List;
import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** NF4 against docs/mapping.md §7.3–§7.6. */
class Nf4Test {
  /** §7.4's test vector: 128 bf16 values, block 0 (i − 32)/32, block 1 (j − 20)/8. */
  static float[] vector() {
    float[] v = new float[128];
    for (int i = 0; i < 64; i++) {
      v[i] = (i - 32) / 32f;
      v[64 + i] = (i - 20) / 8f;
    }
    return v;
  }

  static byte[] bytes(TensorSpec t) throws IOException {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    t.bytes().writeTo(Channels.newChannel(out));
    return out.toByteArray();
  }

  static List<TensorSpec> quantise(Nf4.Format f, float[] values, DType dtype) throws IOException {
    byte[] src = dtype == DType.BF16 ? Bytes.bf16(values) : Bytes.f32(values);
    return new Nf4Quantizer(f, dtype, Shape.of(values.length), Bytes.of(src)).entries("w");
  }

  @Test
  void codeTableAndMidpointsBitForBit() {
    assertEquals(0xBF800000, Float.floatToRawIntBits(Nf4.CODE[0]));
    assertEquals(0x3F3913B3, Float.floatToRawIntBits(Nf4.CODE[14]));
    int[] mids = {0xBF591CD8, 0xBF1C5270, 0xBEEB8480, 0xBEADEA76, 0xBE703CEC, 0xBE0D38BC, 0xBD3A7871, 0x3D22FAFF,
        0x3DF64862, 0x3E5067E0, 0x3E9582D4, 0x3EC753F9, 0x3F006D04, 0x3F248DAF, 0x3F5C89DA};
    for (int i = 0; i < 15; i++) {
      assertEquals(mids[i], Float.floatToRawIntBits(Nf4.MIDPOINTS[i]), "midpoint " + i);
    }
    float[] dmap = Nf4.dynamicMap();
    assertEquals(0xBF7E3333, Float.floatToRawIntBits(dmap[0]));
    assertEquals(0, Float.floatToRawIntBits(dmap[127]));
    assertEquals(0x3F800000, Float.floatToRawIntBits(dmap[255]));
  }

  @Test
  void formatNOfTheSpecVector() throws IOException {
    List<TensorSpec> e = quantise(Nf4.Format.NPU, vector(), DType.BF16);
    assertEquals(List.of("w", "w.absmax", "w.quant_map", "w.quant_state.bitsandbytes__nf4"),
        e.stream().map(TensorSpec::name).toList());
    assertEquals("888898999999a9aaaabbbbccdcddeefeff001121223343445455656666667777babbbbccccddddedeefeff0000112122"
        + "32334344445555556666666666777777", HexFormat.of().formatHex(bytes(e.get(0))));
    assertEquals(Shape.of(64), e.get(0).shape());
    assertEquals(Shape.of(2, 1), e.get(1).shape());
    assertArrayEquals(new byte[] {(byte) 0x80, 0x3F, (byte) 0xAC, 0x40}, bytes(e.get(1))); // bf16 1.0, 5.375
    assertEquals("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [128]}",
        new String(bytes(e.get(3)), StandardCharsets.US_ASCII));
  }

  @Test
  void formatCOfTheSpecVectorWithNestedState() throws IOException {
    List<TensorSpec> e = quantise(Nf4.Format.BITSANDBYTES, vector(), DType.BF16);
    assertEquals(List.of("w", "w.absmax", "w.quant_map", "w.nested_absmax", "w.nested_quant_map",
        "w.quant_state.bitsandbytes__nf4"), e.stream().map(TensorSpec::name).toList());
    assertEquals("000001111111122222333344455566677788999aaabbbccccddddeeeeeeeffff23333344445555566667778888999aaaa"
        + "bbbbcccccddddddeeeeeeeeeeffffff", HexFormat.of().formatHex(bytes(e.get(0))));
    assertEquals(Shape.of(64, 1), e.get(0).shape());
    assertArrayEquals(new byte[] {0, (byte) 255}, bytes(e.get(1)));
    ByteBuffer nested = ByteBuffer.wrap(bytes(e.get(3))).order(ByteOrder.LITTLE_ENDIAN);
    assertEquals(2.1875f, nested.getFloat());
    assertEquals("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [128], "
        + "\"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": 3.1875}",
        new String(bytes(e.get(5)), StandardCharsets.US_ASCII));
  }

  @Test
  void tiesZeroBlocksNegativeZeroAndPartialBlocks() throws IOException {
    // Format C: a value exactly on a midpoint takes the lower code
    assertEquals(7, Nf4.bucketize(Nf4.MIDPOINTS[7]));
    assertEquals(8, Nf4.bucketize(Math.nextUp(Nf4.MIDPOINTS[7])));
    // Format N: first minimum; a zero block (NaN) gives code 0, nibble 8
    assertEquals(0, Nf4.nearestFirst(Float.NaN));
    float[] zeros = new float[64];
    assertEquals((byte) 0x88, bytes(quantise(Nf4.Format.NPU, zeros, DType.BF16).get(0))[0]);
    // negative zero is zero: code 7 in Format C (bucketize), nibble 15 in N (nearest 0.0)
    float[] negz = new float[64];
    negz[0] = -0f;
    negz[1] = 1f;
    assertEquals(0x7F, bytes(quantise(Nf4.Format.BITSANDBYTES, negz, DType.F32).get(0))[0] & 0xFF);
    assertEquals(0x7F, bytes(quantise(Nf4.Format.NPU, negz, DType.F32).get(0))[0] & 0xFF);
    // Format C: a partial last block of 3 values, odd count padded with code 7
    float[] partial = new float[67];
    partial[64] = -2f;
    partial[65] = 1f;
    partial[66] = 2f;
    List<TensorSpec> c = quantise(Nf4.Format.BITSANDBYTES, partial, DType.F32);
    byte[] packed = bytes(c.get(0));
    assertEquals(34, packed.length);
    assertEquals(Shape.of(34, 1), c.get(0).shape());
    assertEquals(0x0C, packed[32] & 0xFF); // -1 → 0, 0.5 → 12
    assertEquals(0xF7, packed[33] & 0xFF); // 1 → 15, pad → 7
    // Format N refuses what it cannot encode
    assertThrows(IOException.class, () -> quantise(Nf4.Format.NPU, partial, DType.F32));
  }

  @Test
  void dequantiseOfQuantiseIsWithinHalfTheLargestCodeGap() throws IOException {
    SplittableRandom r = new SplittableRandom(3);
    float[] v = new float[64 * 50];
    for (int i = 0; i < v.length; i++) {
      v[i] = (float) (r.nextGaussian() * 0.02);
    }
    for (Nf4.Format f : Nf4.Format.values()) {
      List<TensorSpec> e = quantise(f, v, DType.F32);
      byte[] packed = bytes(e.get(0));
      ByteBuffer am = ByteBuffer.wrap(bytes(e.get(1))).order(ByteOrder.LITTLE_ENDIAN);
      float maxGap = 0;
      for (int j = 0; j < 15; j++) {
        maxGap = Math.max(maxGap, Nf4.CODE[j + 1] - Nf4.CODE[j]);
      }
      for (int b = 0; b < 50; b++) {
        float absmax = f == Nf4.Format.NPU ? am.getFloat(b * 4) : 0;
        if (f == Nf4.Format.BITSANDBYTES) {
          for (int i = 0; i < 64; i++) {
            absmax = Math.max(absmax, Math.abs(v[b * 64 + i]));
          }
        }
        for (int i = 0; i < 64; i++) {
          int k = b * 64 + i;
          int nib = (packed[k / 2] >> (f == Nf4.Format.NPU ? (k % 2) * 4 : (1 - k % 2) * 4)) & 15;
          int idx = f == Nf4.Format.NPU ? nib ^ 8 : nib;
          float back = Nf4.CODE[idx] * absmax;
          assertTrue(Math.abs(back - v[k]) <= maxGap / 2 * absmax + 1e-7f, f + " element " + k);
        }
      }
    }
  }

  @Test
  void stateJsonForEachDtypeAndPythonRepr() {
    assertEquals("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"bfloat16\", \"shape\": [2112, 7168]}",
        Nf4.stateJson("bfloat16", new long[] {2112, 7168}, null));
    assertEquals(82, Nf4.stateJson("bfloat16", new long[] {2112, 7168}, null).length());
    for (String dtype : new String[] {"float16", "float32"}) {
      String state = Nf4.stateJson(dtype, new long[] {4}, null);
      assertTrue(state.contains("\"dtype\": \"" + dtype + "\""), state);
    }
    assertEquals("3.1875", Nf4.pythonRepr(3.1875));
    assertEquals("0.0123", Nf4.pythonRepr(0.0123));
    assertEquals("1e-05", Nf4.pythonRepr(1e-05));
    assertEquals("9.999999747378752e-06", Nf4.pythonRepr((double) 1e-05f));
    assertEquals("1e+16", Nf4.pythonRepr(1e16));
    assertEquals("123.0", Nf4.pythonRepr(123));
    assertEquals("-0.5", Nf4.pythonRepr(-0.5));
  }
}
