package ckptbeam.io.torch;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Reads a {@code torch.save} zip checkpoint without loading tensors: the pickle is parsed safely
 * ({@link PickleReader}) and each tensor becomes a {@link TensorLocation}, a byte range inside its stored record.
 */
public final class TorchCheckpointReader {
  /** Upper bound for {@code data.pkl}: metadata only, a few MB even for the largest rank files. */
  public static final long MAX_PICKLE_BYTES = 512L << 20;

  private final String file;
  private final ZipDirectory zip;
  private final Object root;

  private TorchCheckpointReader(String file, ZipDirectory zip, Object root) {
    this.file = file;
    this.zip = zip;
    this.root = root;
  }

  public static TorchCheckpointReader open(String file) throws IOException {
    try (RangeReader in = CheckpointFiles.open(file)) {
      return read(file, in);
    }
  }

  /** Reads the directory and the pickle through {@code in}; {@code file} names the file in messages. */
  public static TorchCheckpointReader read(String file, RangeReader in) throws IOException {
    ZipDirectory zip = ZipDirectory.read(file, in);
    if (zip.records().containsKey("constants.pkl")) {
      throw new CheckpointFormatException(file, "InvalidTorchZip", "a TorchScript archive, not a checkpoint");
    }
    byte[] pkl = zip.readSmall(in, "data.pkl", MAX_PICKLE_BYTES);
    return new TorchCheckpointReader(file, zip, PickleReader.read(file, pkl));
  }

  public String file() {
    return file;
  }

  /** The unpickled top-level object. */
  public Object root() {
    return root;
  }

  /**
   * The tensors of a top-level mapping entry ({@code model}, {@code model0}), keyed by state-dict key, in order.
   * Entries that are not tensors ({@code _extra_state} blobs, None) are left out.
   */
  public Map<String, PickleReader.TorchTensor> tensors(String entry) throws CheckpointFormatException {
    if (!(root instanceof Map)) {
      throw new CheckpointFormatException(file, "UnexpectedContent", "the top-level object is not a mapping");
    }
    Object model = ((Map<?, ?>) root).get(entry);
    if (!(model instanceof Map)) {
      throw new CheckpointFormatException(file, "UnexpectedContent", "no \"" + entry + "\" mapping in the checkpoint"
          + " (top-level keys: " + ((Map<?, ?>) root).keySet() + ")");
    }
    Map<String, PickleReader.TorchTensor> out = new LinkedHashMap<>();
    for (Map.Entry<?, ?> e : ((Map<?, ?>) model).entrySet()) {
      if (e.getKey() instanceof String && e.getValue() instanceof PickleReader.TorchTensor) {
        out.put((String) e.getKey(), (PickleReader.TorchTensor) e.getValue());
      }
    }
    return out;
  }

  /**
   * Where the bytes of one tensor are: its storage record must exist, be stored (not compressed) and hold the
   * whole view; the view must be contiguous.
   */
  public TensorLocation locate(String name, PickleReader.TorchTensor t) throws CheckpointFormatException {
    ZipDirectory.Record r = zip.records().get("data/" + t.storage.key);
    if (r == null) {
      throw new CheckpointFormatException(file, "MissingStorage", "tensor \"" + name + "\" uses storage \""
          + t.storage.key + "\", but the archive has no record data/" + t.storage.key);
    }
    if (r.method != 0) {
      throw new CheckpointFormatException(file, "CompressedStorage", "storage record data/" + t.storage.key
          + " of tensor \"" + name + "\" is compressed; only stored records can be read as byte ranges");
    }
    if (!t.isContiguous()) {
      throw new CheckpointFormatException(file, "NonContiguousTensor", "tensor \"" + name + "\" is a "
          + "non-contiguous view (size " + Arrays.toString(t.size) + ", stride "
          + Arrays.toString(t.stride) + ")");
    }
    long bytes;
    long start;
    try {
      bytes = t.shape().byteSize(t.dtype);
      start = Math.multiplyExact(t.offset, t.dtype.size());
      Math.addExact(start, bytes);
    } catch (ArithmeticException | IllegalArgumentException e) {
      throw new CheckpointFormatException(file, "InvalidTensor", "tensor \"" + name + "\" overflows");
    }
    if (start + bytes > r.size) {
      throw new CheckpointFormatException(file, "StorageTooShort", "tensor \"" + name + "\" needs bytes [" + start
          + ", " + (start + bytes) + ") of data/" + t.storage.key + ", which holds " + r.size);
    }
    return new TensorLocation(name, file, t.dtype, t.shape(), r.dataStart + start);
  }
}
