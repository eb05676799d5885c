package ckptbeam.io.torch;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * A safe reader of torch {@code data.pkl} streams (protocols 0 to 5, docs/formats.md §1.8 and §1.10). It never executes
 * or instantiates anything: globals are descriptors, a fixed set of known constructors (tensor rebuilds, dicts,
 * sets, bytes) is interpreted, other allowlisted globals become inert {@link PyObject} placeholders, and a global
 * outside the allowlist is an error. Values come out as plain Java objects: null, Boolean, Long, BigInteger, Double,
 * String, byte[], {@code Object[]} (tuple), List, Set, {@code LinkedHashMap} (dict, OrderedDict, defaultdict),
 * {@link TorchTensor}, {@link PyObject}.
 */
public final class PickleReader {
  /** A global reference: a name, never resolved to code. */
  public static final class PyGlobal {
    public final String module;
    public final String name;

    PyGlobal(String module, String name) {
      this.module = module;
      this.name = name;
    }

    @Override
    public String toString() {
      return module + "." + name;
    }
  }

  /** An object we do not interpret (an args Namespace, a numpy array, an enum): its class, arguments and state. */
  public static final class PyObject {
    public final PyGlobal type;
    public final Object args;
    public Object state;

    PyObject(PyGlobal type, Object args) {
      this.type = type;
      this.args = args;
    }

    @Override
    public String toString() {
      return "<" + type + ">";
    }
  }

  /** A storage named by a persistent id: record {@code data/<key>}, {@code numel} elements of {@code dtype}. */
  public static final class TorchStorage {
    public final String key;
    public final DType dtype;
    public final long numel;

    TorchStorage(String key, DType dtype, long numel) {
      this.key = key;
      this.dtype = dtype;
      this.numel = numel;
    }
  }

  /** A tensor: a strided view of a storage. Offsets and strides are in elements of {@link #dtype}. */
  public static final class TorchTensor {
    public final TorchStorage storage;
    public final DType dtype;
    public final long offset;
    public final long[] size;
    public final long[] stride;

    TorchTensor(TorchStorage storage, DType dtype, long offset, long[] size, long[] stride) {
      this.storage = storage;
      this.dtype = dtype;
      this.offset = offset;
      this.size = size;
      this.stride = stride;
    }

    public Shape shape() {
      return Shape.of(size);
    }

    /** Row-major with no gaps (strides of size-1 dimensions do not matter). */
    public boolean isContiguous() {
      long expected = 1;
      for (int i = size.length - 1; i >= 0; i--) {
        if (size[i] != 1 && stride[i] != expected) {
          return false;
        }
        expected *= size[i];
      }
      return true;
    }
  }

  private static final int MAX_MEMO = 10_000_000;

  private static final Set<String> EXACT_ALLOWED = Set.of("collections.OrderedDict", "collections.defaultdict",
      "collections.Counter", "builtins.set", "builtins.frozenset", "builtins.bytearray", "builtins.bytes",
      "builtins.complex", "builtins.slice", "builtins.range", "builtins.object", "builtins.list", "builtins.dict",
      "builtins.tuple", "builtins.int", "builtins.float", "builtins.str", "builtins.bool", "_codecs.encode",
      "argparse.Namespace", "copyreg._reconstructor", "functools.partial", "types.SimpleNamespace",
      "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.Path", "datetime.datetime", "datetime.date",
      "datetime.timedelta", "datetime.timezone", "decimal.Decimal", "enum.Enum", "io.BytesIO", "_io.BytesIO");
  /** Modules whose globals are inert data types here (checkpoint args, rng states, enums). */
  private static final List<String> ALLOWED_MODULES = List.of("torch", "numpy", "megatron", "mindspeed",
      "mindspeed_llm", "transformer_engine", "apex", "modellink");

  private final String source;
  private final byte[] p;
  private int i;
  private final ArrayList<Object> stack = new ArrayList<>();
  private final ArrayList<ArrayList<Object>> marks = new ArrayList<>();
  private final Map<Long, Object> memo = new HashMap<>();

  private PickleReader(String source, byte[] p) {
    this.source = source;
    this.p = p;
  }

  /** Parses a whole pickle stream; {@code source} names the file in error messages. */
  public static Object read(String source, byte[] pickle) throws CheckpointFormatException {
    PickleReader r = new PickleReader(source, pickle);
    try {
      return r.run();
    } catch (IndexOutOfBoundsException e) {
      throw r.bad("truncated or malformed pickle near byte " + r.i);
    } catch (ClassCastException e) {
      throw r.bad("malformed pickle near byte " + r.i + " (an operand of the wrong type)");
    } catch (NumberFormatException e) {
      throw r.bad("malformed number in a text opcode near byte " + r.i);
    } catch (ArithmeticException | IllegalArgumentException | NegativeArraySizeException e) {
      throw r.bad("malformed pickle near byte " + r.i + " (" + e.getMessage() + ")");
    }
  }

  /** Whether a global may appear in a checkpoint we read. */
  public static boolean allowed(String module, String name) {
    if (EXACT_ALLOWED.contains(module + "." + name)) {
      return true;
    }
    for (String m : ALLOWED_MODULES) {
      if (module.equals(m) || module.startsWith(m + ".")) {
        return true;
      }
    }
    return false;
  }

  private Object run() throws CheckpointFormatException {
    while (true) {
      PickleOp op = PickleOp.of(p[i++]);
      if (op == null) {
        throw bad(String.format("opcode 0x%02x at byte %d is not supported", p[i - 1] & 0xFF, i - 1));
      }
      switch (op) {
        case PROTO: i++; break;
        case FRAME: i += 8; break;
        case STOP: return pop();
        case MARK: marks.add(new ArrayList<>(stack)); stack.clear(); break;
        case EMPTY_TUPLE: push(new Object[0]); break;
        case TUPLE: push(popMark().toArray()); break;
        case TUPLE1: { Object a = pop(); push(new Object[] {a}); break; }
        case TUPLE2: { Object b = pop(); Object a = pop(); push(new Object[] {a, b}); break; }
        case TUPLE3: { Object c = pop(); Object b = pop(); Object a = pop(); push(new Object[] {a, b, c}); break; }
        case EMPTY_DICT: push(new LinkedHashMap<Object, Object>()); break;
        case DICT: push(dictOf(popMark())); break;
        case SETITEM: { Object v = pop(); Object k = pop(); mapOf(top()).put(key(k), v); break; }
        case SETITEMS: { List<Object> kv = popMark(); Map<Object, Object> m = mapOf(top()); putAll(m, kv); break; }
        case EMPTY_LIST: push(new ArrayList<>()); break;
        case LIST: push(new ArrayList<>(popMark())); break;
        case APPEND: { Object v = pop(); listOf(top()).add(v); break; }
        case APPENDS: { List<Object> items = popMark(); listOf(top()).addAll(items); break; }
        case EMPTY_SET: push(new LinkedHashSet<>()); break;
        case ADDITEMS: { List<Object> items = popMark(); setOf(top()).addAll(items); break; }
        case FROZENSET: push(new LinkedHashSet<>(popMark())); break;
        case NONE: push(null); break;
        case NEWTRUE: push(Boolean.TRUE); break;
        case NEWFALSE: push(Boolean.FALSE); break;
        case BININT1: push((long) (p[i++] & 0xFF)); break;
        case BININT2: push((long) (u8(i) | u8(i + 1) << 8)); i += 2; break;
        case BININT: push((long) i32(i)); i += 4; break;
        case LONG1: { int n = u8(i++); push(longFrom(n)); break; }
        case LONG4: { int n = i32(i); i += 4; push(longFrom(n)); break; }
        case INT: push(parseIntLine(readLine())); break;
        case LONG: push(new BigInteger(stripL(readLine()))); break;
        case BINFLOAT: { long bits = 0; for (int k = 0; k < 8; k++) { bits = bits << 8 | u8(i + k); } i += 8;
          push(Double.longBitsToDouble(bits)); break; }
        case FLOAT: push(Double.parseDouble(readLine())); break;
        case BINUNICODE: { int n = i32(i); i += 4; push(str(n)); break; }
        case SHORT_BINUNICODE: { int n = u8(i++); push(str(n)); break; }
        case BINUNICODE8: { long n = i64(i); i += 8; push(str(len(n))); break; }
        case UNICODE: push(unescapeRawUnicode(readLine())); break;
        case SHORT_BINSTRING: { int n = u8(i++); push(str(n)); break; } // py2 str, decoded as UTF-8 like torch.load
        case BINSTRING: { int n = i32(i); i += 4; push(str(n)); break; }
        case STRING: push(unquote(readLine())); break;
        case SHORT_BINBYTES: { int n = u8(i++); push(bytes(n)); break; }
        case BINBYTES: { int n = i32(i); i += 4; push(bytes(n)); break; }
        case BINBYTES8: { long n = i64(i); i += 8; push(bytes(len(n))); break; }
        case BYTEARRAY8: { long n = i64(i); i += 8; push(bytes(len(n))); break; }
        case GLOBAL: { String module = readLine(); String name = readLine(); push(global(module, name)); break; }
        case INST: { String module = readLine(); String name = readLine(); List<Object> args = popMark();
          push(call(global(module, name), args.toArray())); break; }
        case STACK_GLOBAL: { String name = (String) pop(); String module = (String) pop(); push(global(module, name)); break; }
        case REDUCE: { Object args = pop(); Object fn = pop(); push(call(fn, (Object[]) args)); break; }
        case NEWOBJ: { Object args = pop(); Object cls = pop(); push(newObj(cls, (Object[]) args)); break; }
        case NEWOBJ_EX: { pop(); Object args = pop(); Object cls = pop(); push(newObj(cls, (Object[]) args)); break; }
        case OBJ: { List<Object> items = popMark(); Object cls = items.remove(0); push(newObj(cls, items.toArray()));
          break; }
        case BUILD: { Object state = pop(); build(top(), state); break; }
        case BINPERSID: push(persistent(pop())); break;
        case PERSID: push(persistent(readLine())); break;
        case BINPUT: memo(u8(i++)); break;
        case LONG_BINPUT: memo(u32(i)); i += 4; break;
        case MEMOIZE: memo(memo.size()); break;
        case PUT: memo(Long.parseLong(readLine().trim())); break;
        case BINGET: push(recall(u8(i++))); break;
        case LONG_BINGET: push(recall(u32(i))); i += 4; break;
        case GET: push(recall(Long.parseLong(readLine().trim()))); break;
        case POP: pop(); break;
        case DUP: push(top()); break;
        case POP_MARK: popMark(); break;
        default:
          throw bad("opcode " + op + " at byte " + (i - 1) + " is not supported");
      }
    }
  }

  // ---- interpretation of globals, calls and persistent ids ----

  private PyGlobal global(String module, String name) throws CheckpointFormatException {
    if (module.equals("__builtin__")) {
      module = "builtins";
    } else if (module.equals("copy_reg")) {
      module = "copyreg";
    }
    if (!allowed(module, name)) {
      throw new CheckpointFormatException(source, "ForbiddenGlobal", "the pickle names global " + module + "."
          + name + ", which is not on the allowlist of a weights checkpoint; nothing was executed");
    }
    return new PyGlobal(module, name);
  }

  private Object call(Object fn, Object[] args) throws CheckpointFormatException {
    if (!(fn instanceof PyGlobal)) {
      return new PyObject(new PyGlobal("?", String.valueOf(fn)), args);
    }
    PyGlobal g = (PyGlobal) fn;
    String f = g.toString();
    switch (f) {
      case "torch._utils._rebuild_tensor_v2":
      case "torch._utils._rebuild_tensor":
        return tensor(args, null);
      case "torch._utils._rebuild_tensor_v3":
        return tensor(args, dtypeOf(args[6]));
      case "torch._utils._rebuild_parameter":
      case "torch._utils._rebuild_parameter_with_state":
        return args[0];
      case "torch._tensor._rebuild_from_type_v2":
        return call(args[0], (Object[]) args[2]);
      case "collections.OrderedDict":
      case "collections.defaultdict":
      case "builtins.dict": {
        LinkedHashMap<Object, Object> m = new LinkedHashMap<>();
        if (!f.equals("collections.defaultdict") && args.length == 1 && args[0] instanceof List) {
          for (Object pair : (List<?>) args[0]) {
            Object[] kv = (Object[]) pair;
            m.put(key(kv[0]), kv[1]);
          }
        }
        return m;
      }
      case "builtins.set":
      case "builtins.frozenset":
        return args.length == 0 ? new LinkedHashSet<>() : new LinkedHashSet<>(iterable(args[0]));
      case "_codecs.encode": {
        String s = (String) args[0];
        byte[] out = new byte[s.length()];
        for (int k = 0; k < out.length; k++) {
          out[k] = (byte) s.charAt(k);
        }
        return out;
      }
      case "torch.Size":
        return args.length == 0 ? new Object[0] : args[0];
      default:
        return new PyObject(g, args);
    }
  }

  private Object newObj(Object cls, Object[] args) {
    if (cls instanceof PyGlobal && cls.toString().equals("torch.nn.parameter.Parameter") && args.length > 0) {
      return args[0];
    }
    PyGlobal g = cls instanceof PyGlobal ? (PyGlobal) cls : new PyGlobal("?", String.valueOf(cls));
    return new PyObject(g, args);
  }

  private void build(Object target, Object state) {
    if (target instanceof PyObject) {
      ((PyObject) target).state = state;
    }
    // BUILD on a mapping sets attributes (state_dict's _metadata), not items; on a tensor, hooks: both ignored
  }

  private TorchTensor tensor(Object[] args, DType dtypeOverride) throws CheckpointFormatException {
    if (!(args[0] instanceof TorchStorage)) {
      throw bad("a tensor rebuild does not name a storage");
    }
    TorchStorage s = (TorchStorage) args[0];
    DType dtype = dtypeOverride != null ? dtypeOverride : s.dtype;
    long offset = toLong(args[1]);
    long[] size = longs(args[2]);
    long[] stride = longs(args[3]);
    if (size.length != stride.length || offset < 0) {
      throw bad("tensor with size " + Arrays.toString(size) + ", stride " + Arrays.toString(stride) + ", offset "
          + offset + " is malformed");
    }
    try {
      Shape.of(size).byteSize(dtype); // negative or overflowing sizes fail here, not later
    } catch (IllegalArgumentException | ArithmeticException e) {
      throw bad("tensor with size " + Arrays.toString(size) + " is malformed (" + e.getMessage() + ")");
    }
    return new TorchTensor(s, dtype, offset, size, stride);
  }

  private DType dtypeOf(Object g) throws CheckpointFormatException {
    if (g instanceof PyGlobal && ((PyGlobal) g).module.equals("torch")) {
      DType t = DType.fromTorchName(((PyGlobal) g).name);
      if (t != null) {
        return t;
      }
    }
    throw bad("unsupported tensor dtype " + g);
  }

  private Object persistent(Object pid) throws CheckpointFormatException {
    if (!(pid instanceof Object[]) || ((Object[]) pid).length != 5 || !"storage".equals(((Object[]) pid)[0])) {
      throw bad("unsupported persistent id " + describe(pid) + " (expected ('storage', class, key, location, numel))");
    }
    Object[] t = (Object[]) pid;
    if (!(t[1] instanceof PyGlobal)) {
      throw bad("storage persistent id without a storage class");
    }
    String cls = ((PyGlobal) t[1]).name;
    DType dtype = cls.equals("UntypedStorage") ? DType.U8 : DType.fromTorchStorageClass(cls);
    if (dtype == null) {
      throw bad("unsupported storage class " + t[1]);
    }
    long numel = toLong(t[4]);
    if (numel < 0) {
      throw bad("storage with negative size " + numel);
    }
    return new TorchStorage(String.valueOf(t[2]), dtype, numel);
  }

  // ---- stack, memo and operand helpers ----

  private void push(Object o) {
    stack.add(o);
  }

  private Object pop() throws CheckpointFormatException {
    if (stack.isEmpty()) {
      throw bad("stack underflow at byte " + i);
    }
    return stack.remove(stack.size() - 1);
  }

  private Object top() throws CheckpointFormatException {
    if (stack.isEmpty()) {
      throw bad("stack underflow at byte " + i);
    }
    return stack.get(stack.size() - 1);
  }

  private List<Object> popMark() throws CheckpointFormatException {
    if (marks.isEmpty()) {
      throw bad("no MARK on the stack at byte " + i);
    }
    List<Object> items = new ArrayList<>(stack);
    stack.clear();
    stack.addAll(marks.remove(marks.size() - 1));
    return items;
  }

  private void memo(long index) throws CheckpointFormatException {
    if (memo.size() >= MAX_MEMO) {
      throw bad("memo grows past " + MAX_MEMO + " entries");
    }
    memo.put(index, top());
  }

  private Object recall(long index) throws CheckpointFormatException {
    if (!memo.containsKey(index)) {
      throw bad("memo index " + index + " was never stored");
    }
    return memo.get(index);
  }

  @SuppressWarnings("unchecked")
  private Map<Object, Object> mapOf(Object o) throws CheckpointFormatException {
    if (o instanceof Map) {
      return (Map<Object, Object>) o;
    }
    if (o instanceof PyObject) {
      return new LinkedHashMap<>(); // items set into an opaque object are dropped
    }
    throw bad("SETITEM on a " + describe(o));
  }

  @SuppressWarnings("unchecked")
  private List<Object> listOf(Object o) throws CheckpointFormatException {
    if (o instanceof List) {
      return (List<Object>) o;
    }
    if (o instanceof PyObject) {
      return new ArrayList<>();
    }
    throw bad("APPEND on a " + describe(o));
  }

  @SuppressWarnings("unchecked")
  private Set<Object> setOf(Object o) throws CheckpointFormatException {
    if (o instanceof Set) {
      return (Set<Object>) o;
    }
    throw bad("ADDITEMS on a " + describe(o));
  }

  private void putAll(Map<Object, Object> m, List<Object> kv) throws CheckpointFormatException {
    if (kv.size() % 2 != 0) {
      throw bad("SETITEMS with an odd number of items");
    }
    for (int k = 0; k < kv.size(); k += 2) {
      m.put(key(kv.get(k)), kv.get(k + 1));
    }
  }

  private Map<Object, Object> dictOf(List<Object> kv) throws CheckpointFormatException {
    LinkedHashMap<Object, Object> m = new LinkedHashMap<>();
    putAll(m, kv);
    return m;
  }

  /** Dict keys: tuples become lists so that equal tuples are equal keys. */
  private static Object key(Object k) {
    return k instanceof Object[] ? Arrays.asList((Object[]) k) : k;
  }

  private List<Object> iterable(Object o) throws CheckpointFormatException {
    if (o instanceof List) {
      return new ArrayList<>((List<?>) o);
    }
    if (o instanceof Object[]) {
      return Arrays.asList((Object[]) o);
    }
    if (o instanceof Set) {
      return new ArrayList<>((Set<?>) o);
    }
    throw bad("expected a sequence, got " + describe(o));
  }

  private long toLong(Object o) throws CheckpointFormatException {
    if (o instanceof Long) {
      return (Long) o;
    }
    if (o instanceof Boolean) {
      return (Boolean) o ? 1 : 0;
    }
    throw bad("expected an integer, got " + describe(o));
  }

  private long[] longs(Object o) throws CheckpointFormatException {
    List<Object> items = iterable(o);
    long[] out = new long[items.size()];
    for (int k = 0; k < out.length; k++) {
      out[k] = toLong(items.get(k));
    }
    return out;
  }

  private Object longFrom(int n) throws CheckpointFormatException {
    if (n < 0 || n > p.length - i) {
      throw bad("LONG of " + n + " bytes runs past the end of the pickle");
    }
    if (n == 0) {
      return 0L;
    }
    byte[] be = new byte[n];
    for (int k = 0; k < n; k++) {
      be[k] = p[i + n - 1 - k];
    }
    i += n;
    BigInteger v = new BigInteger(be);
    return v.bitLength() < 64 ? (Object) v.longValue() : v;
  }

  private int len(long n) throws CheckpointFormatException {
    if (n < 0 || n > p.length - i) {
      throw bad("a length of " + n + " runs past the end of the pickle");
    }
    return (int) n;
  }

  private String str(int n) throws CheckpointFormatException {
    len(n);
    String s = new String(p, i, n, StandardCharsets.UTF_8);
    i += n;
    return s;
  }

  private byte[] bytes(int n) throws CheckpointFormatException {
    len(n);
    byte[] b = Arrays.copyOfRange(p, i, i + n);
    i += n;
    return b;
  }

  private String readLine() throws CheckpointFormatException {
    int start = i;
    while (p[i] != '\n') {
      i++;
    }
    String s = new String(p, start, i - start, StandardCharsets.UTF_8);
    i++;
    return s;
  }

  private static Object parseIntLine(String s) {
    s = s.trim();
    if (s.equals("00")) {
      return Boolean.FALSE;
    }
    if (s.equals("01")) {
      return Boolean.TRUE;
    }
    BigInteger v = new BigInteger(s);
    return v.bitLength() < 64 ? (Object) v.longValue() : v;
  }

  private static String stripL(String s) {
    s = s.trim();
    return s.endsWith("L") ? s.substring(0, s.length() - 1) : s;
  }

  private static String unquote(String s) {
    s = s.trim();
    if (s.length() >= 2 && (s.charAt(0) == '\'' || s.charAt(0) == '"')) {
      return s.substring(1, s.length() - 1);
    }
    return s;
  }

  private static String unescapeRawUnicode(String s) {
    StringBuilder b = new StringBuilder();
    for (int k = 0; k < s.length(); k++) {
      char c = s.charAt(k);
      if (c == '\\' && k + 5 < s.length() && s.charAt(k + 1) == 'u') {
        b.append((char) Integer.parseInt(s.substring(k + 2, k + 6), 16));
        k += 5;
      } else {
        b.append(c);
      }
    }
    return b.toString();
  }

  private int u8(int at) {
    return p[at] & 0xFF;
  }

  private int i32(int at) {
    return u8(at) | u8(at + 1) << 8 | u8(at + 2) << 16 | u8(at + 3) << 24;
  }

  private long u32(int at) {
    return i32(at) & 0xFFFFFFFFL;
  }

  private long i64(int at) {
    return (u32(at)) | u32(at + 4) << 32;
  }

  private static String describe(Object o) {
    return o == null ? "None" : o instanceof Object[] ? "tuple of " + ((Object[]) o).length : o.getClass().getSimpleName();
  }

  private CheckpointFormatException bad(String detail) {
    return new CheckpointFormatException(source, "InvalidPickle", detail);
  }
}
