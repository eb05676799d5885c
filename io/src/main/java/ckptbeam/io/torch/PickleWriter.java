package ckptbeam.io.torch;

import static ckptbeam.io.torch.PickleOp.*;

import java.io.ByteArrayOutputStream;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.Map;

/**
 * A pickle protocol 2 emitter that uses only the opcodes torch's weights-only unpickler accepts (those {@link PickleOp}
 * marks written, docs/formats.md §1.8.1): no memo, no framing, no protocol-4 opcodes. Values are encoded as CPython's protocol-2
 * pickler encodes them (§1.8.2).
 */
public final class PickleWriter {
  /** A value that knows how to pickle itself (tensors, OrderedDicts). */
  public interface Picklable {
    void pickle(PickleWriter w);
  }

  /** A {@code collections.OrderedDict}; a plain {@link Map} pickles as a {@code dict}. */
  public static final class OrderedDict implements Picklable {
    private final Map<String, ?> items;

    public OrderedDict(Map<String, ?> items) {
      this.items = items;
    }

    @Override
    public void pickle(PickleWriter w) {
      w.global("collections", "OrderedDict").op(EMPTY_TUPLE).op(REDUCE);
      w.items(items);
    }
  }

  /**
   * An {@code argparse.Namespace} with these attributes, as CPython pickles one: {@code GLOBAL}, {@code EMPTY_TUPLE},
   * {@code NEWOBJ}, the attribute dict, {@code BUILD}. Not in torch's {@code weights_only} allowlist: DeepSeek-V4 rank
   * files carry one because MindSpeed's and Megatron's loaders read it (docs/formats.md §1.11).
   */
  public static final class Namespace implements Picklable {
    private final Map<String, ?> attributes;

    public Namespace(Map<String, ?> attributes) {
      this.attributes = attributes;
    }

    @Override
    public void pickle(PickleWriter w) {
      w.global("argparse", "Namespace").op(EMPTY_TUPLE).op(NEWOBJ);
      w.op(EMPTY_DICT).items(attributes);
      w.op(BUILD);
    }
  }

  private final ByteArrayOutputStream out = new ByteArrayOutputStream();

  /** Starts a stream: {@code PROTO 2}. */
  public PickleWriter begin() {
    op(PROTO);
    out.write(2);
    return this;
  }

  /** Ends the stream with {@code STOP} and returns its bytes. */
  public byte[] end() {
    op(STOP);
    return out.toByteArray();
  }

  public PickleWriter op(PickleOp op) {
    if (!op.written) {
      throw new IllegalArgumentException(op + " is not an opcode the writer may emit (docs/formats.md §1.8.1)");
    }
    out.write(op.code);
    return this;
  }

  public PickleWriter global(String module, String name) {
    op(GLOBAL);
    raw((module + "\n" + name + "\n").getBytes(StandardCharsets.UTF_8));
    return this;
  }

  /** Any supported value: null, Boolean, Integer/Long/BigInteger, Double/Float, String, Map, List, Picklable. */
  public PickleWriter value(Object v) {
    if (v == null) {
      op(NONE);
    } else if (v instanceof Boolean) {
      op((Boolean) v ? NEWTRUE : NEWFALSE);
    } else if (v instanceof Integer || v instanceof Long) {
      integer(((Number) v).longValue());
    } else if (v instanceof BigInteger) {
      long1((BigInteger) v);
    } else if (v instanceof Double || v instanceof Float) {
      op(BINFLOAT);
      long bits = Double.doubleToRawLongBits(((Number) v).doubleValue());
      for (int i = 7; i >= 0; i--) {
        out.write((int) (bits >>> (8 * i)));
      }
    } else if (v instanceof String) {
      string((String) v);
    } else if (v instanceof Map) {
      @SuppressWarnings("unchecked")
      Map<String, ?> m = (Map<String, ?>) v;
      op(EMPTY_DICT);
      items(m);
    } else if (v instanceof List) {
      op(EMPTY_LIST);
      List<?> l = (List<?>) v;
      if (!l.isEmpty()) {
        op(MARK);
        l.forEach(this::value);
        op(APPENDS);
      }
    } else if (v instanceof Picklable) {
      ((Picklable) v).pickle(this);
    } else {
      throw new IllegalArgumentException("cannot pickle " + v.getClass().getName());
    }
    return this;
  }

  /** A tuple of the given values, in the shortest form CPython uses. */
  public PickleWriter tuple(Object... items) {
    switch (items.length) {
      case 0:
        return op(EMPTY_TUPLE);
      case 1:
        return value(items[0]).op(TUPLE1);
      case 2:
        return value(items[0]).value(items[1]).op(TUPLE2);
      case 3:
        return value(items[0]).value(items[1]).value(items[2]).op(TUPLE3);
      default:
        op(MARK);
        for (Object o : items) {
          value(o);
        }
        return op(TUPLE);
    }
  }

  /** A tuple of longs (shapes, strides). */
  public PickleWriter longTuple(long[] values) {
    Object[] boxed = new Object[values.length];
    for (int i = 0; i < values.length; i++) {
      boxed[i] = values[i];
    }
    return tuple(boxed);
  }

  /** {@code MARK k v ... SETITEMS} into the mapping on top of the stack (nothing when empty). */
  PickleWriter items(Map<String, ?> m) {
    if (!m.isEmpty()) {
      op(MARK);
      for (Map.Entry<String, ?> e : m.entrySet()) {
        string(e.getKey());
        value(e.getValue());
      }
      op(SETITEMS);
    }
    return this;
  }

  public PickleWriter string(String s) {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    op(BINUNICODE);
    u32(b.length);
    raw(b);
    return this;
  }

  public PickleWriter integer(long v) {
    if (v >= 0 && v <= 0xFF) {
      op(BININT1);
      out.write((int) v);
    } else if (v >= 0 && v <= 0xFFFF) {
      op(BININT2);
      out.write((int) (v & 0xFF));
      out.write((int) (v >>> 8));
    } else if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) {
      op(BININT);
      u32((int) v);
    } else {
      long1(BigInteger.valueOf(v));
    }
    return this;
  }

  private void long1(BigInteger v) {
    byte[] be = v.toByteArray(); // minimal two's complement, big-endian
    op(LONG1);
    out.write(be.length);
    for (int i = be.length - 1; i >= 0; i--) {
      out.write(be[i]);
    }
  }

  private void u32(int v) {
    out.write(v);
    out.write(v >>> 8);
    out.write(v >>> 16);
    out.write(v >>> 24);
  }

  private void raw(byte[] b) {
    out.write(b, 0, b.length);
  }
}
