package ckptbeam.io.torch;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;

import java.math.BigInteger;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;

/** Encodings of plain values, as CPython's protocol-2 pickler emits them (docs/formats.md §1.8.2). */
class PickleWriterTest {
  private static byte[] pickle(Object v) {
    return new PickleWriter().value(v).end();
  }

  private static byte[] b(int... v) {
    byte[] out = new byte[v.length + 1];
    for (int i = 0; i < v.length; i++) {
      out[i] = (byte) v[i];
    }
    out[v.length] = '.';
    return out;
  }

  @Test
  void integers() {
    assertArrayEquals(b('K', 7), pickle(7));
    assertArrayEquals(b('M', 0x34, 0x12), pickle(0x1234));
    assertArrayEquals(b('J', 0xFF, 0xFF, 0xFF, 0xFF), pickle(-1));
    assertArrayEquals(b('J', 0, 0, 1, 0), pickle(65536));
    assertArrayEquals(b(0x8A, 6, 0, 0, 0, 0, 0, 1), pickle(1L << 40));
    assertArrayEquals(b(0x8A, 5, 0, 0, 0, 0x80, 0), pickle(1L << 31));
    assertArrayEquals(b(0x8A, 1, 0), pickle(BigInteger.ZERO));
  }

  @Test
  void floatsAreBigEndianDoubles() {
    assertArrayEquals(b('G', 0x3F, 0xE0, 0, 0, 0, 0, 0, 0), pickle(0.5));
    assertArrayEquals(b('G', 0x40, 0x08, 0, 0, 0, 0, 0, 0), pickle(3.0));
  }

  @Test
  void constantsStringsAndContainers() {
    assertArrayEquals(b('N'), pickle(null));
    assertArrayEquals(b(0x88), pickle(true));
    assertArrayEquals(b('X', 2, 0, 0, 0, 0xC3, 0xA9), pickle("é"));
    assertArrayEquals(b('}'), pickle(Map.of()));
    Map<String, Object> m = new LinkedHashMap<>();
    m.put("a", 1);
    m.put("b", false);
    assertArrayEquals(b('}', '(', 'X', 1, 0, 0, 0, 'a', 'K', 1, 'X', 1, 0, 0, 0, 'b', 0x89, 'u'), pickle(m));
    assertArrayEquals(b(']', '(', 'K', 1, 'K', 2, 'e'), pickle(List.of(1, 2)));
    assertArrayEquals(b(']'), pickle(List.of()));
  }

  @Test
  void tuples() {
    assertArrayEquals(b(')'), new PickleWriter().tuple().end());
    assertArrayEquals(b('K', 1, 0x85), new PickleWriter().tuple(1).end());
    assertArrayEquals(b('K', 2, 'K', 3, 0x86), new PickleWriter().longTuple(new long[] {2, 3}).end());
    assertArrayEquals(b('(', 'K', 1, 'K', 2, 'K', 3, 'K', 4, 't'), new PickleWriter().tuple(1, 2, 3, 4).end());
  }
}
