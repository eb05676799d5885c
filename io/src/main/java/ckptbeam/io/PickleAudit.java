package ckptbeam.io;

import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;

/**
 * Proves, without executing anything, that a pickle stream stays inside what torch's weights-only unpickler (the
 * default of {@code torch.load} since 2.6) accepts: its opcodes (docs/formats.md §1.8.1, column WO) and its globals
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
        int op = p[i++] & 0xFF;
        switch (op) {
          case 0x80: // PROTO
            r.protocol = p[i++] & 0xFF;
            note(r, "PROTO");
            if (r.protocol != 2) {
              r.violations.add("protocol " + r.protocol + " (torch's weights-only loader expects 2)");
            }
            break;
          case '.':
            note(r, "STOP");
            return finish(r, i, p.length);
          case '(': note(r, "MARK"); break;
          case ')': note(r, "EMPTY_TUPLE"); break;
          case 't': note(r, "TUPLE"); break;
          case 0x85: note(r, "TUPLE1"); break;
          case 0x86: note(r, "TUPLE2"); break;
          case 0x87: note(r, "TUPLE3"); break;
          case '}': note(r, "EMPTY_DICT"); break;
          case 's': note(r, "SETITEM"); break;
          case 'u': note(r, "SETITEMS"); break;
          case ']': note(r, "EMPTY_LIST"); break;
          case 'a': note(r, "APPEND"); break;
          case 'e': note(r, "APPENDS"); break;
          case 'N': note(r, "NONE"); break;
          case 0x88: note(r, "NEWTRUE"); break;
          case 0x89: note(r, "NEWFALSE"); break;
          case 'R': note(r, "REDUCE"); break;
          case 'Q': note(r, "BINPERSID"); break;
          case 0x8F: note(r, "EMPTY_SET"); break;
          case 'K': note(r, "BININT1"); i += 1; break;
          case 'M': note(r, "BININT2"); i += 2; break;
          case 'J': note(r, "BININT"); i += 4; break;
          case 'G': note(r, "BINFLOAT"); i += 8; break;
          case 'q': note(r, "BINPUT"); i += 1; break;
          case 'h': note(r, "BINGET"); i += 1; break;
          case 'r': note(r, "LONG_BINPUT"); i += 4; break;
          case 'j': note(r, "LONG_BINGET"); i += 4; break;
          case 0x8A: note(r, "LONG1"); i += 1 + (p[i] & 0xFF); break;
          case 'X': note(r, "BINUNICODE"); i += 4 + u32(p, i); break;
          case 'U': note(r, "SHORT_BINSTRING"); i += 1 + (p[i] & 0xFF); break;
          case 0x81: note(r, "NEWOBJ"); break;
          case 'b': note(r, "BUILD"); break;
          case 'c': {
            int nl1 = indexOf(p, i, (byte) '\n');
            int nl2 = indexOf(p, nl1 + 1, (byte) '\n');
            String module = new String(p, i, nl1 - i, StandardCharsets.UTF_8);
            String name = new String(p, nl1 + 1, nl2 - nl1 - 1, StandardCharsets.UTF_8);
            i = nl2 + 1;
            note(r, "GLOBAL");
            r.globals.add(module + "." + name);
            if (!allowedGlobal(module, name)) {
              r.violations.add("global " + module + "." + name + " is not in the weights-only allowlist");
            }
            break;
          }
          default:
            r.violations.add(String.format("opcode 0x%02x at byte %d is not accepted by the weights-only loader", op,
                i - 1));
            return r;
        }
      }
      r.violations.add("no STOP opcode");
    } catch (ArrayIndexOutOfBoundsException | StringIndexOutOfBoundsException e) {
      r.violations.add("truncated pickle at byte " + i);
    }
    return r;
  }

  private static Report finish(Report r, int end, int length) {
    if (end != length) {
      r.violations.add((length - end) + " bytes after STOP");
    }
    return r;
  }

  private static void note(Report r, String name) {
    r.opcodes.add(name);
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
