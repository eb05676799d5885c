package ckptbeam.io.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import org.junit.jupiter.api.Test;

class DTypeTest {
  @Test
  void sizesAndNames() {
    assertEquals(2, DType.BF16.size());
    assertEquals(4, DType.F32.size());
    assertEquals(8, DType.I64.size());
    assertEquals(1, DType.F8_E4M3.size());
    assertEquals("BFloat16Storage", DType.BF16.torchStorageClass());
    assertEquals("ByteStorage", DType.U8.torchStorageClass());
    assertEquals("CharStorage", DType.I8.torchStorageClass());
    assertEquals("float8_e4m3fn", DType.F8_E4M3.torchName());
    assertFalse(DType.F8_E4M3.hasLegacyStorage());
    assertTrue(DType.F16.hasLegacyStorage());
  }

  @Test
  void lookups() {
    for (DType t : DType.values()) {
      assertEquals(t, DType.fromSafetensors(t.safetensorsName()));
      assertEquals(t, DType.fromTorchName(t.torchName()));
      if (t.hasLegacyStorage()) {
        assertEquals(t, DType.fromTorchStorageClass(t.torchStorageClass()));
      }
    }
    assertNull(DType.fromTorchStorageClass("UInt8Storage"));
    IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> DType.fromSafetensors("F4"));
    assertTrue(e.getMessage().contains("F4"), e.getMessage());
  }

  @Test
  void enumOrderIsTheSafetensorsSortOrder() {
    // docs/formats.md §2.3: BOOL < U8 < I8 < F8_E5M2 < F8_E4M3 < I16 < F16 < BF16 < I32 < F32 < F64 < I64
    assertTrue(DType.F32.compareTo(DType.BF16) > 0);
    assertTrue(DType.I64.compareTo(DType.F64) > 0);
    assertTrue(DType.F8_E4M3.compareTo(DType.F8_E5M2) > 0);
    assertTrue(DType.I8.compareTo(DType.U8) > 0);
  }

  @Test
  void shapesRejectNegativeAndOverflow() {
    assertEquals(6, Shape.of(2, 3).numel());
    assertEquals(1, Shape.of().numel());
    assertEquals(0, Shape.of(0, 5).numel());
    assertThrows(IllegalArgumentException.class, () -> Shape.of(-1));
    assertThrows(ArithmeticException.class, () -> Shape.of(1L << 40, 1L << 40));
    assertEquals("[3, 1]", Arrays.toString(Shape.of(2, 3).contiguousStrides()));
  }
}
