package ckptbeam.io.torch;

/**
 * The pickle opcodes ckptbeam knows (docs/formats.md §1.8.1), one table for the writer, the reader and the
 * weights-only audit: each with its byte, the form of its argument, whether our writer emits it and whether torch's
 * weights-only unpickler accepts it. An opcode not listed here is refused by every reader.
 */
public enum PickleOp {
  PROTO(0x80, Arg.U8, true, true),
  FRAME(0x95, Arg.U64, false, false),
  STOP('.', Arg.NONE, true, true),
  MARK('(', Arg.NONE, true, true),
  POP('0', Arg.NONE, false, false),
  POP_MARK('1', Arg.NONE, false, false),
  DUP('2', Arg.NONE, false, false),
  // tuples, lists, dicts, sets
  EMPTY_TUPLE(')', Arg.NONE, true, true),
  TUPLE('t', Arg.NONE, true, true),
  TUPLE1(0x85, Arg.NONE, true, true),
  TUPLE2(0x86, Arg.NONE, true, true),
  TUPLE3(0x87, Arg.NONE, true, true),
  EMPTY_LIST(']', Arg.NONE, true, true),
  LIST('l', Arg.NONE, false, false),
  APPEND('a', Arg.NONE, false, true),
  APPENDS('e', Arg.NONE, true, true),
  EMPTY_DICT('}', Arg.NONE, true, true),
  DICT('d', Arg.NONE, false, false),
  SETITEM('s', Arg.NONE, false, true),
  SETITEMS('u', Arg.NONE, true, true),
  EMPTY_SET(0x8F, Arg.NONE, false, true),
  ADDITEMS(0x90, Arg.NONE, false, false),
  FROZENSET(0x91, Arg.NONE, false, false),
  // scalars
  NONE('N', Arg.NONE, true, true),
  NEWTRUE(0x88, Arg.NONE, true, true),
  NEWFALSE(0x89, Arg.NONE, true, true),
  BININT1('K', Arg.U8, true, true),
  BININT2('M', Arg.U16, true, true),
  BININT('J', Arg.U32, true, true),
  LONG1(0x8A, Arg.BYTES_U8, true, true),
  LONG4(0x8B, Arg.BYTES_U32, false, false),
  INT('I', Arg.LINE, false, false),
  LONG('L', Arg.LINE, false, false),
  BINFLOAT('G', Arg.U64, true, true),
  FLOAT('F', Arg.LINE, false, false),
  // strings and bytes
  BINUNICODE('X', Arg.BYTES_U32, true, true),
  SHORT_BINUNICODE(0x8C, Arg.BYTES_U8, false, false),
  BINUNICODE8(0x8D, Arg.BYTES_U64, false, false),
  UNICODE('V', Arg.LINE, false, false),
  SHORT_BINSTRING('U', Arg.BYTES_U8, false, true),
  BINSTRING('T', Arg.BYTES_U32, false, false),
  STRING('S', Arg.LINE, false, false),
  SHORT_BINBYTES('C', Arg.BYTES_U8, false, false),
  BINBYTES('B', Arg.BYTES_U32, false, false),
  BINBYTES8(0x8E, Arg.BYTES_U64, false, false),
  BYTEARRAY8(0x96, Arg.BYTES_U64, false, false),
  // globals, calls, objects
  GLOBAL('c', Arg.TWO_LINES, true, true),
  STACK_GLOBAL(0x93, Arg.NONE, false, false),
  INST('i', Arg.TWO_LINES, false, false),
  OBJ('o', Arg.NONE, false, false),
  REDUCE('R', Arg.NONE, true, true),
  NEWOBJ(0x81, Arg.NONE, true, true),
  NEWOBJ_EX(0x92, Arg.NONE, false, false),
  BUILD('b', Arg.NONE, true, true),
  BINPERSID('Q', Arg.NONE, true, true),
  PERSID('P', Arg.LINE, false, false),
  // memo
  BINPUT('q', Arg.U8, false, true),
  LONG_BINPUT('r', Arg.U32, false, true),
  MEMOIZE(0x94, Arg.NONE, false, false),
  PUT('p', Arg.LINE, false, false),
  BINGET('h', Arg.U8, false, true),
  LONG_BINGET('j', Arg.U32, false, true),
  GET('g', Arg.LINE, false, false);

  /** The form of the bytes that follow an opcode. */
  public enum Arg {
    NONE, U8, U16, U32, U64,
    /** a length of 1, 4 or 8 bytes (little-endian), then that many bytes */
    BYTES_U8, BYTES_U32, BYTES_U64,
    /** text up to a newline */
    LINE,
    /** two newline-terminated lines (module, name) */
    TWO_LINES
  }

  private static final PickleOp[] BY_CODE = new PickleOp[256];

  static {
    for (PickleOp op : values()) {
      BY_CODE[op.code] = op;
    }
  }

  /** The opcode's byte. */
  public final int code;
  /** What follows it. */
  public final Arg arg;
  /** Whether {@link PickleWriter} emits it (all protocol 2, all accepted by the weights-only unpickler). */
  public final boolean written;
  /** Whether torch's weights-only unpickler (torch ≥ 1.13, the default of {@code torch.load} since 2.6) accepts it. */
  public final boolean weightsOnly;

  PickleOp(int code, Arg arg, boolean written, boolean weightsOnly) {
    this.code = code;
    this.arg = arg;
    this.written = written;
    this.weightsOnly = weightsOnly;
  }

  /** The opcode of a byte, or null for a byte that is no opcode we know. */
  public static PickleOp of(int code) {
    return BY_CODE[code & 0xFF];
  }
}
