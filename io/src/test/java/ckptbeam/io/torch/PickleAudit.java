package ckptbeam.io.torch;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Proves, without executing anything, that a pickle stream stays inside what torch's weights-only unpickler (the
 * default of {@code torch.load} since 2.6) accepts: its opcodes ({@link PickleOp#weightsOnly}, docs/formats.md §1.8.1) and its globals
 * (§1.9). We cannot run torch 2.6 here, so this structural check stands in for it.
 */
public final class PickleAudit {
  /** What the audit found: the protocol, the distinct opcodes and globals, and every violation. */
  public static final class Report {
    public int protocol = -1;
    public final Set<String> opcodes = new TreeSet<>();
    public final Set<String> globals = new TreeSet<>();
    public final List<String> violations = new ArrayList<>();

    public boolean ok() {
      return violations.isEmpty();
    }

    @Override
    public String toString() {
      return "protocol " + protocol + ", opcodes " + opcodes + ", globals " + globals
          + (violations.isEmpty() ? "" : ", violations " + violations);
    }
  }

  private static final Set<String> ALLOWED_GLOBALS = Set.of("collections.OrderedDict", "collections.Counter",
      "torch.nn.parameter.Parameter", "torch.serialization._get_layout", "torch.Size", "torch.Tensor", "torch.device",
      "_codecs.encode", "builtins.bytearray", "builtins.set", "builtins.complex", "torch.storage.TypedStorage",
      "torch.storage.UntypedStorage", "torch._tensor._rebuild_from_type_v2", "torch.per_tensor_affine",
      "torch.per_tensor_symmetric", "torch.per_channel_affine", "torch.per_channel_symmetric",
      "torch.per_channel_affine_float_qparams");
  private static final Set<String> REBUILD = Set.of("_rebuild_parameter", "_rebuild_parameter_with_state",
      "_rebuild_qtensor", "_rebuild_tensor", "_rebuild_tensor_v2", "_rebuild_tensor_v3", "_rebuild_sparse_tensor",
      "_rebuild_meta_tensor_no_storage", "_rebuild_nested_tensor", "_rebuild_wrapper_subclass",
      "_rebuild_device_tensor_from_numpy", "_rebuild_device_tensor_from_cpu_tensor");
  private static final Set<String> DTYPES = Set.of("float64", "float32", "float16", "bfloat16", "int64", "int32",
      "int16", "int8", "uint8", "bool", "complex128", "complex64", "complex32", "float8_e5m2", "float8_e4m3fn",
      "float8_e5m2fnuz", "float8_e4m3fnuz", "float8_e8m0fnu", "uint16", "uint32", "uint64", "qint8", "qint32",
      "quint8", "quint4x2", "quint2x4", "bits8", "bits16", "bits1x8", "bits2x4", "bits4x2");

  private PickleAudit() {}

  /** Whether torch's weights-only unpickler allows a global by default. */
  public static boolean allowedGlobal(String module, String name) {
    String full = module + "." + name;
    if (ALLOWED_GLOBALS.contains(full)) {
      return true;
    }
    if (module.equals("torch._utils")) {
      return REBUILD.contains(name);
    }
    if (module.equals("torch")) {
      return DTYPES.contains(name) || name.endsWith("Storage") || name.endsWith("Tensor");
    }
    return module.equals("torch.cuda") && (name.endsWith("Storage") || name.endsWith("Tensor"));
  }

  public static Report audit(byte[] p) {
    Report r = new Report();
    int i = 0;
    try {
      while (i < p.length) {
        PickleOp op = PickleOp.of(p[i++]);
        if (op == null || !op.weightsOnly) {
          r.violations.add(String.format("opcode %s at byte %d is not accepted by the weights-only loader",
              op == null ? String.format("0x%02x", p[i - 1] & 0xFF) : op, i - 1));
          return r;
        }
        r.opcodes.add(op.name());
        if (op == PickleOp.STOP) {
          return finish(r, i, p.length);
        }
        if (op == PickleOp.PROTO) {
          r.protocol = p[i] & 0xFF;
          if (r.protocol != 2) {
            r.violations.add("protocol " + r.protocol + " (torch's weights-only loader expects 2)");
          }
        }
        if (op == PickleOp.GLOBAL) {
          int nl1 = indexOf(p, i, (byte) '\n');
          int nl2 = indexOf(p, nl1 + 1, (byte) '\n');
          String module = new String(p, i, nl1 - i, StandardCharsets.UTF_8);
          String name = new String(p, nl1 + 1, nl2 - nl1 - 1, StandardCharsets.UTF_8);
          r.globals.add(module + "." + name);
          if (!allowedGlobal(module, name)) {
            r.violations.add("global " + module + "." + name + " is not in the weights-only allowlist");
          }
        }
        i = afterArgument(op.arg, p, i);
      }
      r.violations.add("no STOP opcode");
    } catch (ArrayIndexOutOfBoundsException | StringIndexOutOfBoundsException e) {
      r.violations.add("truncated pickle at byte " + i);
    }
    return r;
  }

  /** Where the next opcode starts, given an argument of this form at {@code i}. */
  private static int afterArgument(PickleOp.Arg arg, byte[] p, int i) {
    switch (arg) {
      case NONE: return i;
      case U8: return i + 1;
      case U16: return i + 2;
      case U32: return i + 4;
      case U64: return i + 8;
      case BYTES_U8: return i + 1 + (p[i] & 0xFF);
      case BYTES_U32: return i + 4 + u32(p, i);
      case LINE: return indexOf(p, i, (byte) '\n') + 1;
      case TWO_LINES: return indexOf(p, indexOf(p, i, (byte) '\n') + 1, (byte) '\n') + 1;
      default: throw new IllegalStateException(arg + " arguments belong to no weights-only opcode");
    }
  }

  private static Report finish(Report r, int end, int length) {
    if (end != length) {
      r.violations.add((length - end) + " bytes after STOP");
    }
    return r;
  }

  private static int u32(byte[] p, int i) {
    return (p[i] & 0xFF) | (p[i + 1] & 0xFF) << 8 | (p[i + 2] & 0xFF) << 16 | (p[i + 3] & 0xFF) << 24;
  }

  private static int indexOf(byte[] p, int from, byte b) {
    for (int i = from; i < p.length; i++) {
      if (p[i] == b) {
        return i;
      }
    }
    throw new ArrayIndexOutOfBoundsException(from);
  }
}
