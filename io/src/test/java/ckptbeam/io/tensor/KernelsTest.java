package ckptbeam.io.tensor;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.util.SplittableRandom;
import org.junit.jupiter.api.Test;

/** The blocked transpose against the definition, on sizes and offsets that are not multiples of its blocks. */
class KernelsTest {
  @Test
  void transposeMatchesTheDefinitionForEveryShapeAndOffset() {
    SplittableRandom r = new SplittableRandom(7);
    int[] sizes = {1, 2, 3, 4, 5, 7, 15, 16, 17, 31, 33, 64, 67};
    for (int es : new int[] {2, 4, 1}) {
      for (int m : sizes) {
        for (int n : sizes) {
          int srcOffset = r.nextInt(0, 9) * es;
          int srcRowBytes = (n + r.nextInt(0, 5)) * es;
          int dstOffset = r.nextInt(0, 7) * es;
          int dstRowBytes = dstOffset + (m + r.nextInt(0, 3)) * es;
          byte[] src = new byte[srcOffset + m * srcRowBytes];
          r.nextBytes(src);
          byte[] expected = new byte[n * dstRowBytes];
          byte[] actual = new byte[n * dstRowBytes];
          for (int q = 0; q < m; q++) {
            for (int j = 0; j < n; j++) {
              System.arraycopy(src, srcOffset + q * srcRowBytes + j * es, expected, j * dstRowBytes + dstOffset + q * es,
                  es);
            }
          }
          Kernels.transpose(src, srcOffset, srcRowBytes, m, n, es, actual, dstRowBytes, dstOffset);
          assertArrayEquals(expected, actual, "es " + es + ", " + m + " x " + n);
        }
      }
    }
  }
}
