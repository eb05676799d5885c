package ckptbeam.io.compute;

import java.math.BigDecimal;
import java.util.Locale;

/**
 * NF4 quantisation, blocksize 64 (docs/mapping.md §7.2–§7.6), in the two encodings that exist:
 * <ul>
 *   <li>{@link Format#NPU}: bitsandbytes-npu-beta 0.45.3, what MindSpeed's QLoRA loads: absmax in the weight dtype,
 *       {@code a = x / absmax} (float32 division), the first code minimising {@code |a − c_j|}, nibble
 *       {@code idx XOR 8}, first element in the low nibble, no nested statistics;</li>
 *   <li>{@link Format#BITSANDBYTES}: upstream bitsandbytes 0.50.x on the CPU: float32 absmax,
 *       {@code a = clamp(x · (1 / max(absmax, 1e-38)), −1, 1)} (a partial last block divides), code index = number of
 *       midpoints strictly below {@code a}, first element in the high nibble, absmax double-quantised with the
 *       8-bit dynamic map (blocks of 256).</li>
 * </ul>
 */
public final class Nf4 {
  public static final int BLOCK = 64;
  public static final int NESTED_BLOCK = 256;

  /** The two encodings. */
  public enum Format { NPU, BITSANDBYTES }

  /** The NF4 code table (§7.3), float32 bits. */
  static final int[] CODE_BITS = {0xBF800000, 0xBF3239B1, 0xBF066B30, 0xBECA32A0, 0xBE91A24D, 0xBE3D353F, 0xBDBA7871,
      0x00000000, 0x3DA2FAFF, 0x3E24CAE3, 0x3E7C04DD, 0x3EAD033A, 0x3EE1A4B8, 0x3F1007AB, 0x3F3913B3, 0x3F800000};
  public static final float[] CODE = new float[16];
  /** Float32 midpoints of neighbouring codes: Format C's decision boundaries. */
  public static final float[] MIDPOINTS = new float[15];

  static {
    for (int i = 0; i < 16; i++) {
      CODE[i] = Float.intBitsToFloat(CODE_BITS[i]);
    }
    for (int i = 0; i < 15; i++) {
      MIDPOINTS[i] = (CODE[i] + CODE[i + 1]) / 2;
    }
  }

  private Nf4() {}

  /** Format N: the first code index minimising |a − c_j| in float32 (a NaN, from a zero block, gives 0). */
  public static int nearestFirst(float a) {
    if (Float.isNaN(a)) {
      return 0;
    }
    int best = 0;
    float bestD = Math.abs(a - CODE[0]);
    for (int j = 1; j < 16; j++) {
      float d = Math.abs(a - CODE[j]);
      if (d < bestD) {
        best = j;
        bestD = d;
      }
    }
    return best;
  }

  /** Format C: the number of midpoints strictly below a (a value on a midpoint takes the lower code). */
  public static int bucketize(float a) {
    int n = 0;
    while (n < 15 && MIDPOINTS[n] < a) {
      n++;
    }
    return n;
  }

  /**
   * Code indices of one block. {@code x} holds the block's values widened to float32; {@code absmax} is the
   * block's max |x| (in the weight dtype for Format N, float32 for Format C); {@code partial} marks Format C's
   * short last block.
   */
  public static void indices(Format f, float[] x, int n, float absmax, boolean partial, int[] out) {
    if (f == Format.NPU) {
      for (int i = 0; i < n; i++) {
        out[i] = nearestFirst(x[i] / absmax);
      }
      return;
    }
    if (partial) {
      float am = Math.max(absmax, 1e-38f);
      for (int i = 0; i < n; i++) {
        out[i] = bucketize(clamp(x[i] / am));
      }
      return;
    }
    float inv = 1f / Math.max(absmax, 1e-38f);
    for (int i = 0; i < n; i++) {
      out[i] = bucketize(clamp(x[i] * inv));
    }
  }

  private static float clamp(float v) {
    return Math.max(-1f, Math.min(1f, v));
  }

  /** Packs two indices into a byte in the format's nibble order and code. */
  public static byte pack(Format f, int first, int second) {
    if (f == Format.NPU) {
      return (byte) (((first + 8) & 15) | (((second + 8) & 15) << 4));
    }
    return (byte) ((first << 4) | second);
  }

  /** Format C's nested 8-bit code index of a centred absmax value (0.50.x lookup-table rule, §7.5). */
  public static int nestedIndex(float v, float absmax2) {
    if (absmax2 == 0) {
      return 0;
    }
    float scaled = Math.max(-1f, Math.min(1f, v * (1f / absmax2)));
    int u = (int) ((scaled + 1f) * 0.5f * 65535f + 0.5f);
    float t = -1f + 2f * u / 65535f;
    int n = 0;
    while (n < 255 && DmapHolder.MIDPOINTS[n] < t) {
      n++;
    }
    return n;
  }

  /** The signed 8-bit dynamic map of docs/mapping.md Appendix A (hard-coded: linspace rounding differs by platform). */
  public static float[] dynamicMap() {
    return DmapHolder.DMAP.clone();
  }

  private static final class DmapHolder {
    static final float[] DMAP = new float[256];
    static final float[] MIDPOINTS = new float[255];

    static {
      String hex = "BF7E3333BF7A999ABF770000BF736666BF6FCCCDBF6C3333BF68999ABF650000BF616666BF5DCCCDBF5A3333BF56999A"
          + "BF530000BF4F6666BF4BCCCDBF483333BF44999ABF410000BF3D6666BF39CCCDBF363334BF32999ABF2F0000BF2B6666"
          + "BF27CCCDBF243334BF20999ABF1D0000BF196666BF15CCCDBF123334BF0E999ABF0B0000BF076666BF03CCCCBF003333"
          + "BEF93332BEF20000BEEACCCCBEE3999ABEDC6666BED53333BECE0000BEC6CCCCBEBF999ABEB86666BEB13333BEAA0000"
          + "BEA2CCCCBE9B999ABE946666BE8D3334BE860000BE7D9999BE6F3333BE60CCCDBE526666BE440000BE35999ABE273333"
          + "BE18CCCDBE0A6666BDF80000BDDB3334BDC9EB85BDC428F7BDBE6667BDB8A3D7BDB2E148BDAD1EB8BDA75C2ABDA1999A"
          + "BD9BD70ABD96147BBD9051EBBD8A8F5DBD84CCCDBD7E147BBD728F5DBD670A3DBD5B851FBD500000BD447AE1BD38F5C3"
          + "BD2D70A3BD21EB85BD166667BD0AE148BCFEB852BCE7AE15BCD0A3D7BCB9999ABCA28F5DBC8B851FBC68F5C3BC3AE148"
          + "BC1F3B64BC160418BC0CCCCDBC039581BBF4BC6ABBE24DD3BBCFDF3BBBBD70A4BBAB020DBB989374BB8624DDBB676C8A"
          + "BB428F5CBB1DB22DBAF1A9FCBAA7EF9DBA7765FFBA59E83EBA3C6A80BA1EECC1BA016F01B9C7E283B98CE705B923D70B"
          + "B8BA1F4BB88AEFB3B8378034B7B24206B70205FFB65A1A94B513A3B7000000003513A3B7365A1A94370205FF37B24206"
          + "38378034388AEFB338BA1F4B3923D70B398CE70539C7E2833A016F013A1EECC13A3C6A803A59E83E3A7765FF3AA7EF9D"
          + "3AF1A9FC3B1DB22D3B428F5C3B676C8A3B8624DD3B9893743BAB020D3BBD70A43BCFDF3B3BE24DD33BF4BC6A3C039581"
          + "3C0CCCCD3C1604183C1F3B643C3AE1483C68F5C33C8B851F3CA28F5D3CB9999A3CD0A3D73CE7AE153CFEB8523D0AE148"
          + "3D1666673D21EB853D2D70A33D38F5C33D447AE13D5000003D5B851F3D670A3D3D728F5D3D7E147B3D84CCCD3D8A8F5D"
          + "3D9051EB3D96147B3D9BD70A3DA1999A3DA75C2A3DAD1EB83DB2E1483DB8A3D73DBE66673DC428F73DC9EB853DDB3334"
          + "3DF800003E0A66663E18CCCD3E2733333E35999A3E4400003E5266663E60CCCD3E6F33333E7D99993E8600003E8D3334"
          + "3E9466663E9B999A3EA2CCCC3EAA00003EB133333EB866663EBF999A3EC6CCCC3ECE00003ED533333EDC66663EE3999A"
          + "3EEACCCC3EF200003EF933323F0033333F03CCCC3F0766663F0B00003F0E999A3F1233343F15CCCD3F1966663F1D0000"
          + "3F20999A3F2433343F27CCCD3F2B66663F2F00003F32999A3F3633343F39CCCD3F3D66663F4100003F44999A3F483333"
          + "3F4BCCCD3F4F66663F5300003F56999A3F5A33333F5DCCCD3F6166663F6500003F68999A3F6C33333F6FCCCD3F736666"
          + "3F7700003F7A999A3F7E33333F800000";
      for (int i = 0; i < 256; i++) {
        DMAP[i] = Float.intBitsToFloat((int) Long.parseLong(hex.substring(8 * i, 8 * i + 8), 16));
      }
      for (int i = 0; i < 255; i++) {
        MIDPOINTS[i] = (DMAP[i] + DMAP[i + 1]) / 2;
      }
    }
  }

  /**
   * The packed JSON item of {@code QuantState.as_dict(packed=True)} (§7.6), as Python's {@code json.dumps} writes it;
   * {@code nestedOffset} is null for Format N.
   */
  public static String stateJson(String dtypeName, long[] shape, Float nestedOffset) {
    StringBuilder b = new StringBuilder("{\"quant_type\": \"nf4\", \"blocksize\": 64, \"dtype\": \"")
        .append(dtypeName).append("\", \"shape\": [");
    for (int i = 0; i < shape.length; i++) {
      b.append(i > 0 ? ", " : "").append(shape[i]);
    }
    b.append(']');
    if (nestedOffset != null) {
      b.append(", \"nested_blocksize\": 256, \"nested_dtype\": \"float32\", \"nested_offset\": ")
          .append(pythonRepr(nestedOffset.doubleValue()));
    }
    return b.append('}').toString();
  }

  /** Python's {@code repr(float)}: the shortest digits that round-trip, in Python's layout. */
  public static String pythonRepr(double v) {
    if (v == 0) {
      return 1 / v < 0 ? "-0.0" : "0.0";
    }
    if (Double.isNaN(v)) {
      return "nan";
    }
    if (Double.isInfinite(v)) {
      return v > 0 ? "inf" : "-inf";
    }
    String digits = null;
    int exponent = 0;
    for (int p = 1; p <= 17; p++) {
      String s = String.format(Locale.ROOT, "%." + (p - 1) + "e", v);
      if (Double.parseDouble(s) == v) {
        int e = s.indexOf('e');
        digits = s.substring(0, e).replace(".", "").replace("-", "");
        exponent = Integer.parseInt(s.substring(e + 1));
        break;
      }
    }
    digits = digits.replaceAll("0+$", "");
    if (digits.isEmpty()) {
      digits = "0";
    }
    String sign = v < 0 ? "-" : "";
    if (exponent < -4 || exponent >= 16) {
      String mant = digits.length() == 1 ? digits : digits.charAt(0) + "." + digits.substring(1);
      return sign + mant + "e" + (exponent < 0 ? "-" : "+") + String.format(Locale.ROOT, "%02d", Math.abs(exponent));
    }
    BigDecimal d = new BigDecimal(digits).movePointRight(exponent - (digits.length() - 1));
    String plain = d.toPlainString();
    return sign + (plain.contains(".") ? plain : plain + ".0");
  }
}
