package ckptbeam.io.compute;

import ckptbeam.io.Bytes;
import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Float8E4M3;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import java.util.Arrays;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** FP8 e4m3fn decoding (docs/formats.md §3.4) and DeepSeek's block dequantisation (§3.3). */
class Fp8Test {
  @TempDir Path dir;

  @Test
  void decodesEveryCodeByTheFormula() {
    for (int b = 0; b < 256; b++) {
      int e = (b >> 3) & 0xF;
      int m = b & 7;
      float v = Float8E4M3.toFloat((byte) b);
      if (e == 15 && m == 7) {
        assertTrue(Float.isNaN(v), Integer.toHexString(b));
        continue;
      }
      double expected = (e == 0 ? m / 8.0 * Math.pow(2, -6) : (1 + m / 8.0) * Math.pow(2, e - 7))
          * ((b & 0x80) != 0 ? -1 : 1);
      assertEquals(expected, v, 0.0, Integer.toHexString(b));
    }
  }

  @Test
  void keyValuesOfTheSpec() {
    float[] want = {0, 448, -448, -0.875f, 0.4375f, -0.005859375f, -1.25f, -1.5f, -0.00390625f};
    int[] codes = {0x00, 0x7E, 0xFE, 0xB6, 0x2E, 0x83, 0xBA, 0xBC, 0x82};
    for (int i = 0; i < codes.length; i++) {
      assertEquals(want[i], Float8E4M3.toFloat((byte) codes[i]), 0f, Integer.toHexString(codes[i]));
    }
    assertEquals(0.001953125f, Float8E4M3.toFloat((byte) 0x01));
    assertEquals(1.0f, Float8E4M3.toFloat((byte) 0x38));
    assertEquals(Float.floatToRawIntBits(-0f), Float.floatToRawIntBits(Float8E4M3.toFloat((byte) 0x80)));
  }

  /** The vectors of docs/formats.md §3.3, through the streaming reader. */
  @Test
  void dequantisationVectors() throws IOException {
    byte[] codes = {0x7E, 0x38, 0x3B, (byte) 0xC5};
    int[] scales = {0x3901725B, 0x3D800000, 0x38000000, 0x3B8CCCCD};
    short[] want = {0x3D63, 0x3D80, 0x3830, (short) 0xBC65};
    for (int i = 0; i < codes.length; i++) {
      assertEquals(want[i], dequant(new byte[] {codes[i]}, 1, 1, new int[] {scales[i]}, 1, 1)[0]);
    }
  }

  @Test
  void blocksPickTheirScaleAndEdgeBlocksArePartial() throws IOException {
    // 3 x 5 weight, 2 x 2 blocks: scales [2, 3]
    byte[] codes = new byte[15];
    Arrays.fill(codes, (byte) 0x38); // 1.0
    int[] scales = new int[6];
    for (int i = 0; i < 6; i++) {
      scales[i] = Float.floatToIntBits(i + 1);
    }
    short[] out = dequant(codes, 3, 5, scales, 2, 2);
    for (int r = 0; r < 3; r++) {
      for (int c = 0; c < 5; c++) {
        float expected = (r / 2) * 3 + (c / 2) + 1;
        assertEquals(BFloat16.fromFloat(expected), out[r * 5 + c], r + "," + c);
      }
    }
  }

  @Test
  void aScaleOfTheWrongShapeIsRefused() throws IOException {
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
        () -> dequant(new byte[4], 2, 2, new int[] {0, 0}, 1, 1));
    assertTrue(e.getMessage().contains("does not fit"), e.getMessage());
  }

  @Test
  void aNonFiniteScaleIsRefusedBeforeAnythingIsRead() throws IOException {
    // 4 x 4 weight, 2 x 2 blocks: scale [2, 2]; one block's scale is +inf, in a second weight: NaN
    float[][] poisons = {{Float.POSITIVE_INFINITY}, {Float.NaN}, {Float.NEGATIVE_INFINITY}};
    for (float[] poison : poisons) {
      Path f = dir.resolve("poisoned" + System.nanoTime() + ".bin");
      ByteBuffer sb = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
      sb.putFloat(1f).putFloat(2f).putFloat(poison[0]).putFloat(4f);
      Files.write(f, Bytes.concat(new byte[16], sb.array()));
      TensorLocation w = new TensorLocation("layers.0.w", f.toString(), DType.F8_E4M3, Shape.of(4, 4), 0);
      TensorLocation s = new TensorLocation("layers.0.w_scale_inv", f.toString(), DType.F32, Shape.of(2, 2), 16);
      Fp8Dequant d = new Fp8Dequant(w, s, 2, 2);
      CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
          () -> Fp8Dequant.checkScales(List.of(d)));
      assertEquals(f + ": Fp8Scale: scale \"layers.0.w_scale_inv\" holds " + poison[0] + " at block [1, 0]; a block "
          + "scale must be a finite number", e.getMessage());
      // and the reader refuses it too, should the file change after planning
      IOException read = assertThrows(IOException.class, () -> {
        try (var r = d.open(d.asBf16())) {
          r.readFully(0, ByteBuffer.allocate(32));
        }
      });
      assertTrue(read.getMessage().contains("holds " + poison[0]), read.getMessage());
    }
  }

  @Test
  void finiteScalesInManyFilesPass() throws IOException {
    List<Fp8Dequant> all = new java.util.ArrayList<>();
    for (int i = 0; i < 12; i++) {
      Path f = dir.resolve("ok" + i + ".bin");
      ByteBuffer sb = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN);
      sb.putFloat(1f).putFloat(Float.MIN_VALUE).putFloat(-3f).putFloat(Float.MAX_VALUE);
      Files.write(f, Bytes.concat(new byte[16], sb.array()));
      all.add(new Fp8Dequant(new TensorLocation("w" + i, f.toString(), DType.F8_E4M3, Shape.of(4, 4), 0),
          new TensorLocation("w" + i + "_scale_inv", f.toString(), DType.F32, Shape.of(2, 2), 16), 2, 2));
    }
    Fp8Dequant.checkScales(all);
    Fp8Dequant.checkScales(List.of());
  }

  /** Writes weight and scale to a file and reads the weight back through the assembler as bf16. */
  private short[] dequant(byte[] codes, int rows, int cols, int[] scaleBits, int block, int unused) throws IOException {
    ByteBuffer sb = ByteBuffer.allocate(scaleBits.length * 4).order(ByteOrder.LITTLE_ENDIAN);
    for (int s : scaleBits) {
      sb.putInt(s);
    }
    Path f = dir.resolve("w" + System.nanoTime() + ".bin");
    Files.write(f, Bytes.concat(new byte[3], codes, sb.array()));
    TensorLocation w = new TensorLocation("w", f.toString(), DType.F8_E4M3, Shape.of(rows, cols), 3);
    int srows = (rows + block - 1) / block;
    int scols = scaleBits.length / srows;
    TensorLocation s = new TensorLocation("w_scale_inv", f.toString(), DType.F32, Shape.of(srows, scols),
        3 + codes.length);
    return Bf16Reads.read(new Fp8Dequant(w, s, block, block).asBf16(), rows, cols);
  }
}
