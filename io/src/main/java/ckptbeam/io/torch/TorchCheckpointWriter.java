package ckptbeam.io.torch;

import ckptbeam.io.storage.CountingChannel;
import ckptbeam.io.tensor.TensorSpec;
import java.io.IOException;
import java.nio.channels.WritableByteChannel;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Writes an object tree holding tensors as a {@code torch.save} file (zip container, pickle protocol 2) that
 * {@code torch.load} reads, with {@code weights_only=True} too: records {@code data.pkl}, {@code byteorder},
 * {@code data/0..N-1} and {@code version} (docs/formats.md §1.6). Storage keys are assigned in first-use order while
 * pickling; each tensor gets its own contiguous storage. Tensor bytes are streamed from their producers into the
 * zip; none is held whole.
 */
public final class TorchCheckpointWriter {
  private TorchCheckpointWriter() {}

  /** A tensor inside the object tree handed to {@link #write}. */
  public static final class Tensor {
    private final TensorSpec spec;

    public Tensor(TensorSpec spec) {
      this.spec = spec;
    }

    public TensorSpec spec() {
      return spec;
    }
  }

  /**
   * Writes {@code root} (a Map, an {@link OrderedMap}, or any value {@link PickleWriter#value} accepts, with
   * {@link Tensor} leaves) to {@code out}, strictly in order, in torch's own zip layout.
   *
   * @return the bytes written
   */
  public static long write(WritableByteChannel out, String archivePrefix, Object root) throws IOException {
    List<Tensor> storages = new ArrayList<>();
    PickleWriter pickle = new PickleWriter().begin();
    pickle.value(withTensorsPicklable(root, storages));
    byte[] pkl = pickle.end();

    TorchZipWriter zip = new TorchZipWriter(out, archivePrefix);
    zip.writeRecord("data.pkl", pkl);
    zip.writeRecord("byteorder", "little".getBytes(StandardCharsets.US_ASCII));
    for (int key = 0; key < storages.size(); key++) {
      TensorSpec t = storages.get(key).spec();
      CountingChannel sink = zip.beginRecord("data/" + key, t.byteSize());
      t.bytes().writeTo(sink);
      zip.endRecord();
    }
    zip.writeRecord("version", "3\n".getBytes(StandardCharsets.US_ASCII));
    zip.finish();
    return zip.position();
  }

  /** Replaces {@link Tensor} leaves by their pickling form, numbering storages in first-use order. */
  private static Object withTensorsPicklable(Object v, List<Tensor> storages) {
    if (v instanceof Tensor) {
      Tensor t = (Tensor) v;
      String key = Integer.toString(storages.size());
      storages.add(t);
      return (PickleWriter.Picklable) w -> pickleTensor(w, t.spec(), key);
    }
    if (v instanceof Map) {
      Map<String, Object> copy = new LinkedHashMap<>();
      ((Map<?, ?>) v).forEach((k, x) -> copy.put((String) k, withTensorsPicklable(x, storages)));
      return copy;
    }
    if (v instanceof OrderedMap) {
      Map<String, Object> copy = new LinkedHashMap<>();
      ((OrderedMap) v).items.forEach((k, x) -> copy.put(k, withTensorsPicklable(x, storages)));
      return new PickleWriter.OrderedDict(copy);
    }
    return v;
  }

  /** A {@code collections.OrderedDict} in the tree handed to {@link #write} (a plain Map becomes a dict). */
  public static final class OrderedMap {
    private final Map<String, ?> items;

    public OrderedMap(Map<String, ?> items) {
      this.items = items;
    }
  }

  /**
   * One tensor, as {@code Tensor.__reduce_ex__} pickles it (docs/formats.md §1.8.3): {@code _rebuild_tensor_v2} over a
   * typed legacy storage, or {@code _rebuild_tensor_v3} over an {@code UntypedStorage} for dtypes without one.
   */
  static void pickleTensor(PickleWriter w, TensorSpec t, String key) {
    boolean legacy = t.dtype().hasLegacyStorage();
    w.global("torch._utils", legacy ? "_rebuild_tensor_v2" : "_rebuild_tensor_v3");
    w.op(PickleOp.MARK);
    // persistent id ('storage', class, key, 'cpu', numel of the whole storage)
    w.op(PickleOp.MARK);
    w.string("storage");
    if (legacy) {
      w.global("torch", t.dtype().torchStorageClass());
    } else {
      w.global("torch.storage", "UntypedStorage");
    }
    w.string(key);
    w.string("cpu");
    w.integer(legacy ? t.shape().numel() : t.byteSize());
    w.op(PickleOp.TUPLE);
    w.op(PickleOp.BINPERSID);
    w.integer(0);
    w.longTuple(t.shape().dims());
    w.longTuple(t.shape().contiguousStrides());
    w.op(PickleOp.NEWFALSE);
    w.global("collections", "OrderedDict").op(PickleOp.EMPTY_TUPLE).op(PickleOp.REDUCE);
    if (!legacy) {
      w.global("torch", t.dtype().torchName());
    }
    w.op(PickleOp.TUPLE);
    w.op(PickleOp.REDUCE);
  }
}
