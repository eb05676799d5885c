package ckptbeam.io.safetensors;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.SerializableString;
import com.fasterxml.jackson.core.io.CharacterEscapes;
import com.fasterxml.jackson.core.io.SerializedString;
import com.fasterxml.jackson.core.util.DefaultIndenter;
import com.fasterxml.jackson.core.util.DefaultPrettyPrinter;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.fasterxml.jackson.databind.util.RawValue;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.math.BigDecimal;
import java.math.MathContext;
import java.math.RoundingMode;
import java.util.Iterator;
import java.util.Map;

/**
 * JSON laid out as Python's {@code json.dump(obj, f, indent=N)} does: {@code "key": value}, N-space indents, floats
 * as Python's {@code repr} ({@code 1e-06}, {@code 10000.0}), and characters outside printable ASCII escaped (é as
 * backslash, u, 00e9), so that a config.json ckptbeam rewrites reads like the one it came from.
 */
public final class PythonJson {
  private static final ObjectMapper JSON = new ObjectMapper();

  private PythonJson() {}

  /** The node, indented by {@code indent} spaces, with a trailing newline. */
  public static byte[] write(JsonNode node, int indent) {
    DefaultPrettyPrinter base = new DefaultPrettyPrinter()
        .withObjectIndenter(new DefaultIndenter(" ".repeat(indent), "\n"))
        .withArrayIndenter(new DefaultIndenter(" ".repeat(indent), "\n"));
    try {
      ByteArrayOutputStream out = new ByteArrayOutputStream();
      try (JsonGenerator g = JSON.getFactory().createGenerator(out)) {
        g.setPrettyPrinter(new Printer(base));
        g.setCharacterEscapes(new AsciiEscapes());
        JSON.writeTree(g, withPythonFloats(node));
      }
      out.write('\n');
      return out.toByteArray();
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** A copy of {@code node} whose floating-point numbers are raw values spelled as Python's {@code repr}. */
  private static JsonNode withPythonFloats(JsonNode node) {
    if (node.isObject()) {
      ObjectNode out = JSON.createObjectNode();
      for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        if (e.getValue().isFloatingPointNumber()) {
          out.putRawValue(e.getKey(), new RawValue(pythonRepr(e.getValue().doubleValue())));
        } else {
          out.set(e.getKey(), withPythonFloats(e.getValue()));
        }
      }
      return out;
    }
    if (node.isArray()) {
      ArrayNode out = JSON.createArrayNode();
      for (JsonNode v : node) {
        if (v.isFloatingPointNumber()) {
          out.addRawValue(new RawValue(pythonRepr(v.doubleValue())));
        } else {
          out.add(withPythonFloats(v));
        }
      }
      return out;
    }
    return node;
  }

  /**
   * Python's {@code repr} of a float: the shortest decimal that reads back as the same double (the nearest one when
   * several are as short), in fixed notation for decimal exponents -4 … 15 (with {@code .0} when whole) and in
   * scientific notation otherwise, with at least two exponent digits ({@code 1e-06}, {@code 1.5e+16}).
   */
  public static String pythonRepr(double d) {
    if (Double.isNaN(d)) {
      return "NaN";
    }
    if (Double.isInfinite(d)) {
      return d > 0 ? "Infinity" : "-Infinity";
    }
    if (d == 0) {
      return 1 / d < 0 ? "-0.0" : "0.0";
    }
    BigDecimal exact = new BigDecimal(Math.abs(d));
    BigDecimal shortest = exact;
    for (int p = 1; p <= 17 && shortest == exact; p++) {
      // both p-digit neighbours: at a power of two the doubles around it are not evenly spaced, and the one farther
      // from the exact value can be the only one that reads back
      for (RoundingMode mode : new RoundingMode[] {RoundingMode.FLOOR, RoundingMode.CEILING}) {
        BigDecimal candidate = exact.round(new MathContext(p, mode));
        if (candidate.doubleValue() == Math.abs(d) && (shortest == exact || closer(candidate, shortest, exact))) {
          shortest = candidate;
        }
      }
    }
    shortest = shortest.stripTrailingZeros();
    String digits = shortest.unscaledValue().toString();
    int decpt = digits.length() - shortest.scale(); // value = 0.digits x 10^decpt
    StringBuilder out = new StringBuilder(d < 0 ? "-" : "");
    if (decpt > -4 && decpt <= 16) {
      if (decpt <= 0) {
        out.append("0.").append("0".repeat(-decpt)).append(digits);
      } else if (decpt >= digits.length()) {
        out.append(digits).append("0".repeat(decpt - digits.length())).append(".0");
      } else {
        out.append(digits, 0, decpt).append('.').append(digits.substring(decpt));
      }
      return out.toString();
    }
    out.append(digits.charAt(0));
    if (digits.length() > 1) {
      out.append('.').append(digits.substring(1));
    }
    int exponent = decpt - 1;
    return out.append('e').append(exponent < 0 ? '-' : '+').append(String.format("%02d", Math.abs(exponent)))
        .toString();
  }

  /** Whether {@code a} is nearer {@code exact} than {@code b}, or as near with an even last digit (Python's rule). */
  private static boolean closer(BigDecimal a, BigDecimal b, BigDecimal exact) {
    int c = a.subtract(exact).abs().compareTo(b.subtract(exact).abs());
    return c < 0 || c == 0 && !a.unscaledValue().testBit(0);
  }

  /** Python's {@code ensure_ascii}: a character outside printable ASCII as backslash, u, four lower-case hex digits. */
  private static final class AsciiEscapes extends CharacterEscapes {
    private static final long serialVersionUID = 1L;
    private final int[] table = standardAsciiEscapesForJSON();

    AsciiEscapes() {
      table[0x7F] = ESCAPE_CUSTOM;
      for (int c = 0; c < 0x20; c++) {
        if (c != '\n' && c != '\r' && c != '\t' && c != '\b' && c != '\f') {
          table[c] = ESCAPE_CUSTOM;
        }
      }
    }

    @Override
    public int[] getEscapeCodesForAscii() {
      return table;
    }

    /** Called for the custom ASCII codes above and for every non-ASCII UTF-16 unit (surrogates one by one). */
    @Override
    public SerializableString getEscapeSequence(int ch) {
      return new SerializedString(String.format("\\u%04x", ch));
    }
  }

  /** Jackson's pretty printer writes {@code "a" : 1} and {@code [ ]}; Python writes {@code "a": 1} and {@code []}. */
  private static final class Printer extends DefaultPrettyPrinter {
    private static final long serialVersionUID = 1L;

    Printer(DefaultPrettyPrinter base) {
      super(base);
    }

    @Override
    public DefaultPrettyPrinter createInstance() {
      return new Printer(this);
    }

    @Override
    public void writeObjectFieldValueSeparator(JsonGenerator g) throws IOException {
      g.writeRaw(": ");
    }

    @Override
    public void writeEndArray(JsonGenerator g, int nrOfValues) throws IOException {
      if (nrOfValues == 0) {
        _nesting--; // as the base class does before it writes "[ ]" (an empty array left unclosed indents the rest)
        g.writeRaw(']');
        return;
      }
      super.writeEndArray(g, nrOfValues);
    }

    @Override
    public void writeEndObject(JsonGenerator g, int nrOfEntries) throws IOException {
      if (nrOfEntries == 0) {
        _nesting--;
        g.writeRaw('}');
        return;
      }
      super.writeEndObject(g, nrOfEntries);
    }
  }
}
