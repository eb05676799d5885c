package ckptbeam.io.safetensors;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class PythonJsonTest {
  /**
   * Python 3's {@code json.dumps(obj, indent=2)} of an object with awkward floats and characters (its bytes, plus the
   * newline we add): read and written again, the same text.
   */
  private static final String PYTHON = "{\n  \"a\": 1e-06,\n  \"b\": 10000.0,\n  \"c\": 0.02,\n  \"d\": 1e+16,\n"
      + "  \"e\": 1.5e-05,\n  \"f\": 1.2345678901234568e+17,\n"
      + "  \"g\": \"h\\u00e9llo \\u2603 \\ud83d\\ude00\\u0001\\u007f\\n/\",\n  \"h\": [\n    0.1,\n    2.5,\n"
      + "    1e+300,\n    -0.0,\n    5e-324,\n    1000000000000000.0,\n    0.0001,\n    9007199254740992.0\n  ],\n"
      + "  \"i\": 3,\n  \"j\": true,\n  \"k\": null,\n  \"l\": {},\n  \"m\": []\n}\n";

  @Test
  void writesWhatPythonsJsonDumpWrites() throws Exception {
    byte[] written = PythonJson.write(new ObjectMapper().readTree(PYTHON), 2);
    assertEquals(PYTHON, new String(written, StandardCharsets.UTF_8));
  }

  @Test
  void floatsAreSpelledAsPythonsRepr() {
    assertEquals("1e-06", PythonJson.pythonRepr(1e-6));
    assertEquals("0.001", PythonJson.pythonRepr(0.001));
    assertEquals("10000000.0", PythonJson.pythonRepr(1e7)); // Java: 1.0E7
    assertEquals("2.5", PythonJson.pythonRepr(2.5));
    assertEquals("-3.14", PythonJson.pythonRepr(-3.14));
    assertEquals("2e-323", PythonJson.pythonRepr(2e-323));
    assertEquals("1.7976931348623157e+308", PythonJson.pythonRepr(Double.MAX_VALUE));
    assertEquals("Infinity", PythonJson.pythonRepr(Double.POSITIVE_INFINITY));
    // powers of two, where the nearest 16-digit decimal does not read back but the other neighbour does
    assertEquals("5.960464477539063e-08", PythonJson.pythonRepr(Math.scalb(1.0, -24)));
    assertEquals("8.271806125530277e-25", PythonJson.pythonRepr(Math.scalb(1.0, -80)));
    assertEquals("1.152921504606847e+18", PythonJson.pythonRepr(Math.scalb(1.0, 60)));
    assertEquals("8.98846567431158e+307", PythonJson.pythonRepr(Math.scalb(1.0, 1023)));
    assertEquals("2.2250738585072014e-308", PythonJson.pythonRepr(Double.MIN_NORMAL));
  }
}
