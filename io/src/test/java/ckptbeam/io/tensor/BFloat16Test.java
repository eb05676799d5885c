package ckptbeam.io.tensor;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

class BFloat16Test {
  private static short bf(int f32bits) {
    return BFloat16.fromFloat(Float.intBitsToFloat(f32bits));
  }

  @Test
  void roundsToNearestEvenOnTies() {
    assertEquals((short) 0x3F80, bf(0x3F808000)); // tie, even stays
    assertEquals((short) 0x3F82, bf(0x3F818000)); // tie, odd rounds up
    assertEquals((short) 0x3F81, bf(0x3F808001)); // just above the tie
    assertEquals((short) 0x3F80, bf(0x3F807FFF)); // just below the tie
  }

  @Test
  void overflowSubnormalsAndSigns() {
    assertEquals((short) 0x7F80, bf(0x7F7FFFFF)); // max float rounds to +Inf
    assertEquals((short) 0xFF80, bf(0xFF7FFFFF));
    assertEquals((short) 0x0002, bf(0x00018000)); // subnormal kept, tie to even
    assertEquals((short) 0x8000, bf(0x80000000)); // -0
    assertEquals((short) 0x7F80, BFloat16.fromFloat(Float.POSITIVE_INFINITY));
  }

  @Test
  void nanBecomesCanonicalQuietNan() {
    assertEquals((short) 0x7FC0, BFloat16.fromFloat(Float.NaN));
    assertEquals((short) 0x7FC0, bf(0xFF800001));
    assertTrue(Float.isNaN(BFloat16.toFloat((short) 0x7FC0)));
  }

  @Test
  void widensExactlyAndRoundTripsEveryNonNanPattern() {
    for (int bits = 0; bits <= 0xFFFF; bits++) {
      float f = BFloat16.toFloat((short) bits);
      assertEquals(bits << 16, Float.floatToRawIntBits(f));
      if (!Float.isNaN(f)) {
        assertEquals((short) bits, BFloat16.fromFloat(f));
      }
    }
  }

  @Test
  void matchesADirectRoundingDefinitionOnRandomFloats() {
    SplittableRandom r = new SplittableRandom(7);
    for (int i = 0; i < 200_000; i++) {
      int u = r.nextInt();
      float f = Float.intBitsToFloat(u);
      if (Float.isNaN(f)) {
        continue;
      }
      // reference: pick the nearer of the two bf16 neighbours, ties to the even one
      int lo = u & 0xFFFF0000;
      int rem = u & 0xFFFF;
      int expected;
      if (rem < 0x8000) {
        expected = lo >>> 16;
      } else if (rem > 0x8000) {
        expected = (lo >>> 16) + 1;
      } else {
        expected = ((lo >>> 16) & 1) == 0 ? lo >>> 16 : (lo >>> 16) + 1;
      }
      assertEquals((short) expected, BFloat16.fromFloat(f), Integer.toHexString(u));
    }
  }
}
