package ckptbeam.transforms.beam;

import ckptbeam.io.compute.ComputedSource;
import ckptbeam.io.compute.Fp8Dequant;
import ckptbeam.io.compute.Mxfp4Dequant;
import ckptbeam.io.compute.LoraMerge;
import ckptbeam.io.compute.Nf4;
import ckptbeam.io.compute.Nf4Dequant;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.LocatedFile;
import ckptbeam.transforms.McoreKeyNames;
import ckptbeam.transforms.SourceFile;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.TreeSet;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.CoderException;
import org.apache.beam.sdk.coders.CoderProvider;
import org.apache.beam.sdk.coders.CoderProviderRegistrar;
import org.apache.beam.sdk.coders.CoderProviders;
import org.apache.beam.sdk.values.TypeDescriptor;

/**
 * Explicit, deterministic coders of the conversion's requests, written files and results: field by field, in a fixed
 * order, maps sorted, so that equal values have equal bytes on every runner and in every release that keeps the
 * format ({@link #FORMAT} is written first and checked, so a changed format is an error, not a silent misreading).
 * Registered with Beam's coder registry ({@link Registrar}), so a pipeline that creates requests needs no
 * {@code withCoder}.
 */
public final class ConversionCoders {
  /** The encoding's version, written before every value. */
  static final int FORMAT = 5;

  private ConversionCoders() {}

  /**
   * Makes the coders of this class Beam's defaults for their types (listed in
   * {@code META-INF/services/org.apache.beam.sdk.coders.CoderProviderRegistrar}).
   */
  public static final class Registrar implements CoderProviderRegistrar {
    @Override
    public List<CoderProvider> getCoderProviders() {
      return List.of(
          CoderProviders.forCoder(TypeDescriptor.of(ConversionRequest.class), RequestCoder.INSTANCE),
          CoderProviders.forCoder(TypeDescriptor.of(WrittenFile.class), WrittenFileCoder.INSTANCE),
          CoderProviders.forCoder(TypeDescriptor.of(ConversionResult.class), ResultCoder.INSTANCE));
    }
  }

  /**
   * A coder that writes a value's fields after {@link #FORMAT} and checks the format when it reads one back. Its
   * subclasses say how the fields go; nested values are written without a format of their own.
   */
  abstract static class FieldCoder<T> extends AtomicCoder<T> {
    private static final long serialVersionUID = 1L;

    @Override
    public final void encode(T value, OutputStream os) throws IOException {
      DataOutputStream out = new DataOutputStream(os);
      out.writeInt(FORMAT);
      write(value, out);
      out.flush();
    }

    @Override
    public final T decode(InputStream is) throws IOException {
      DataInputStream in = new DataInputStream(is);
      checkFormat(in);
      return read(in);
    }

    /** Field by field, in a fixed order: deterministic. */
    @Override
    public void verifyDeterministic() {}

    abstract void write(T value, DataOutputStream out) throws IOException;

    abstract T read(DataInputStream in) throws IOException;
  }

  /** {@link ConversionRequest}: kind, folders, layouts, model config, HF config dir, LoRA, target modules, mode, provenance. */
  public static final class RequestCoder extends FieldCoder<ConversionRequest> {
    private static final long serialVersionUID = 1L;
    public static final RequestCoder INSTANCE = new RequestCoder();

    private RequestCoder() {}

    @Override
    void write(ConversionRequest r, DataOutputStream out) throws IOException {
      writeString(r.kind().name(), out);
      writeString(r.loadDir(), out);
      writeString(r.saveDir(), out);
      writeLayout(r.layout(), out);
      LayoutOptions target = r.targetLayout();
      out.writeBoolean(target != null);
      if (target != null) {
        writeLayout(target, out);
      }
      writeNullable(r.modelConfig(), out);
      writeNullable(r.hfConfigDir(), out);
      ConversionRequest.Lora lora = r.lora();
      out.writeBoolean(lora != null);
      if (lora != null) {
        out.writeInt(lora.rank);
        out.writeDouble(lora.alpha);
        writeNullable(lora.loraDir, out);
      }
      List<String> modules = r.loraTargetModules();
      out.writeBoolean(modules != null);
      if (modules != null) {
        writeStrings(modules, out);
      }
      writeString(r.existingOutput().name(), out);
      Map<String, String> options = new TreeMap<>(r.options());
      out.writeInt(options.size());
      for (Map.Entry<String, String> e : options.entrySet()) {
        writeString(e.getKey(), out);
        writeString(e.getValue(), out);
      }
    }

    @Override
    ConversionRequest read(DataInputStream in) throws IOException {
      ConversionRequest.Kind kind = ConversionRequest.Kind.valueOf(readString(in));
      String load = readString(in);
      String save = readString(in);
      LayoutOptions layout = readLayout(in);
      LayoutOptions target = in.readBoolean() ? readLayout(in) : null;
      String modelConfig = readNullable(in);
      String hfConfigDir = readNullable(in);
      ConversionRequest.Lora lora = in.readBoolean()
          ? new ConversionRequest.Lora(in.readInt(), in.readDouble(), readNullable(in)) : null;
      List<String> modules = in.readBoolean() ? readStrings(in) : null;
      ConversionRequest.ExistingOutput existing = ConversionRequest.ExistingOutput.valueOf(readString(in));
      Map<String, String> options = new TreeMap<>();
      for (int n = in.readInt(); n > 0; n--) {
        options.put(readString(in), readString(in));
      }
      ConversionRequest r;
      switch (kind) {
        case HF2MCORE:
          r = ConversionRequest.hf2mcore(load, save, layout);
          break;
        case MCORE2HF:
          r = ConversionRequest.mcore2hf(load, save, layout);
          break;
        case LORA_EXPORT:
          r = ConversionRequest.loraExport(load, save, layout, lora, modules);
          break;
        case MCORE2MCORE:
          r = ConversionRequest.mcore2mcore(load, save, layout, target);
          break;
        case FP8_TO_BF16:
          r = ConversionRequest.fp8ToBf16(load, save);
          break;
        default:
          throw new CoderException("unknown request kind " + kind);
      }
      if (modelConfig != null) {
        r = r.withModelConfig(modelConfig);
      }
      if (hfConfigDir != null) {
        r = r.withHfConfigDir(hfConfigDir);
      }
      if (lora != null && kind != ConversionRequest.Kind.LORA_EXPORT) {
        r = r.withLora(lora);
      }
      return r.withExistingOutput(existing).withOptions(options);
    }
  }

  /** {@link WrittenFile}: path, sizes, SHA-256, every tensor with dtype, shape and sources, whether kept. */
  public static final class WrittenFileCoder extends FieldCoder<WrittenFile> {
    private static final long serialVersionUID = 1L;
    public static final WrittenFileCoder INSTANCE = new WrittenFileCoder();

    private WrittenFileCoder() {}

    @Override
    void write(WrittenFile f, DataOutputStream out) throws IOException {
      writeString(f.relativePath, out);
      out.writeLong(f.bytes);
      out.writeLong(f.tensorBytes);
      writeString(f.sha256, out);
      out.writeInt(f.contents.size());
      for (WrittenFile.Tensor t : f.contents) {
        writeString(t.key, out);
        writeString(t.dtype, out);
        out.writeInt(t.shape.length);
        for (long d : t.shape) {
          out.writeLong(d);
        }
        writeStrings(t.sources, out);
      }
      out.writeBoolean(f.reused);
    }

    @Override
    WrittenFile read(DataInputStream in) throws IOException {
      String path = readString(in);
      long bytes = in.readLong();
      long tensorBytes = in.readLong();
      String sha256 = readString(in);
      List<WrittenFile.Tensor> contents = new ArrayList<>();
      for (int n = count(in); n > 0; n--) {
        String key = readString(in);
        String dtype = readString(in);
        long[] shape = new long[count(in)];
        for (int i = 0; i < shape.length; i++) {
          shape[i] = in.readLong();
        }
        contents.add(new WrittenFile.Tensor(key, dtype, shape, readStrings(in)));
      }
      return new WrittenFile(path, bytes, tensorBytes, sha256, contents, in.readBoolean());
    }

  }

  /** {@link ConversionResult}: the request, state, message, files, notes and times. */
  public static final class ResultCoder extends FieldCoder<ConversionResult> {
    private static final long serialVersionUID = 1L;
    public static final ResultCoder INSTANCE = new ResultCoder();

    private ResultCoder() {}

    @Override
    void write(ConversionResult r, DataOutputStream out) throws IOException {
      RequestCoder.INSTANCE.write(r.request, out);
      writeString(r.state.name(), out);
      writeNullable(r.message, out);
      out.writeInt(r.files.size());
      for (ConversionResult.File f : r.files) {
        writeString(f.path, out);
        out.writeLong(f.size);
        writeString(f.sha256, out);
        out.writeInt(f.tensors);
      }
      writeStrings(r.notes, out);
      out.writeLong(r.startMillis);
      out.writeLong(r.endMillis);
    }

    @Override
    ConversionResult read(DataInputStream in) throws IOException {
      ConversionRequest request = RequestCoder.INSTANCE.read(in);
      ConversionResult.State state = ConversionResult.State.valueOf(readString(in));
      String message = readNullable(in);
      List<ConversionResult.File> files = new ArrayList<>();
      for (int n = count(in); n > 0; n--) {
        files.add(new ConversionResult.File(readString(in), in.readLong(), readString(in), in.readInt()));
      }
      List<String> notes = readStrings(in);
      long start = in.readLong();
      long end = in.readLong();
      return new ConversionResult(request, state, message, files, notes, start, end);
    }

  }

  /**
   * {@link TensorLocation}: name, file, dtype, shape, offset and what computes its bytes (an FP8 or NF4
   * dequantisation, a LoRA merge: each a tag and its own fields, sources included).
   */
  static void writeLocation(TensorLocation t, DataOutputStream out) throws IOException {
    writeString(t.name(), out);
    writeString(t.file(), out);
    writeString(t.dtype().name(), out);
    long[] dims = t.shape().dims();
    out.writeInt(dims.length);
    for (long d : dims) {
      out.writeLong(d);
    }
    out.writeLong(t.offset());
    ComputedSource c = t.computed();
    if (c == null) {
      out.writeByte(0);
    } else if (c instanceof Fp8Dequant f) {
      out.writeByte(1);
      writeLocation(f.weight, out);
      writeLocation(f.scale, out);
      out.writeInt(f.blockRows);
      out.writeInt(f.blockCols);
      out.writeBoolean(f.finiteOnly);
    } else if (c instanceof Nf4Dequant n) {
      out.writeByte(2);
      writeString(n.format.name(), out);
      writeLocation(n.packed, out);
      writeLocation(n.absmax, out);
      out.writeBoolean(n.nestedAbsmax != null);
      if (n.nestedAbsmax != null) {
        writeLocation(n.nestedAbsmax, out);
      }
      out.writeFloat(n.nestedOffset);
    } else if (c instanceof LoraMerge m) {
      out.writeByte(3);
      writeLocation(m.left, out);
      writeLocation(m.right, out);
      out.writeLong(m.batches);
      out.writeLong(m.rows);
      out.writeLong(m.cols);
      out.writeLong(m.rank);
      out.writeFloat(m.scale);
    } else if (c instanceof Mxfp4Dequant x) {
      out.writeByte(4);
      writeLocation(x.packed, out);
      writeLocation(x.scale, out);
    } else {
      throw new CoderException("no coder for a tensor computed by " + c.getClass().getName());
    }
  }

  /** Name → location, in the map's order (a plan's or a file's: it matters to no reader, but is deterministic). */
  private static void writeLocations(Map<String, TensorLocation> locations, DataOutputStream out) throws IOException {
    out.writeInt(locations.size());
    for (Map.Entry<String, TensorLocation> e : locations.entrySet()) {
      writeString(e.getKey(), out);
      writeLocation(e.getValue(), out);
    }
  }

  private static Map<String, TensorLocation> readLocations(DataInputStream in) throws IOException {
    Map<String, TensorLocation> out = new LinkedHashMap<>();
    for (int n = count(in); n > 0; n--) {
      out.put(readString(in), readLocation(in));
    }
    return out;
  }

  static TensorLocation readLocation(DataInputStream in) throws IOException {
    String name = readString(in);
    String file = readString(in);
    DType dtype = DType.valueOf(readString(in));
    long[] dims = new long[count(in)];
    for (int i = 0; i < dims.length; i++) {
      dims[i] = in.readLong();
    }
    TensorLocation stored = new TensorLocation(name, file, dtype, Shape.of(dims), in.readLong());
    int kind = in.readByte();
    switch (kind) {
      case 0:
        return stored;
      case 1:
        return stored.computedBy(new Fp8Dequant(readLocation(in), readLocation(in), in.readInt(), in.readInt(),
            in.readBoolean()));
      case 2: {
        Nf4.Format format = Nf4.Format.valueOf(readString(in));
        TensorLocation packed = readLocation(in);
        TensorLocation absmax = readLocation(in);
        TensorLocation nested = in.readBoolean() ? readLocation(in) : null;
        return stored.computedBy(new Nf4Dequant(format, packed, absmax, nested, in.readFloat()));
      }
      case 3:
        return stored.computedBy(new LoraMerge(readLocation(in), readLocation(in), in.readLong(), in.readLong(),
            in.readLong(), in.readLong(), in.readFloat()));
      case 4:
        return stored.computedBy(new Mxfp4Dequant(readLocation(in), readLocation(in)));
      default:
        throw new CoderException("unknown computed-source tag " + kind);
    }
  }

  /** {@link TargetWork}: the conversion's key, its request, the target, its located sources, fingerprint. */
  static final class TargetWorkCoder extends FieldCoder<TargetWork> {
    private static final long serialVersionUID = 1L;
    static final TargetWorkCoder INSTANCE = new TargetWorkCoder();

    private TargetWorkCoder() {}

    @Override
    void write(TargetWork w, DataOutputStream out) throws IOException {
      writeString(w.conversion, out);
      RequestCoder.INSTANCE.write(w.request, out);
      writeString(w.target, out);
      writeLocations(w.sources, out); // the plan's order
      writeString(w.fingerprint, out);
    }

    @Override
    TargetWork read(DataInputStream in) throws IOException {
      String conversion = readString(in);
      ConversionRequest request = RequestCoder.INSTANCE.read(in);
      String target = readString(in);
      return new TargetWork(conversion, request, target, readLocations(in), readString(in));
    }

  }

  /** {@link SourceWork}: the file to read and, once read, what it holds (or why it failed). */
  static final class SourceWorkCoder extends FieldCoder<SourceWork> {
    private static final long serialVersionUID = 1L;
    static final SourceWorkCoder INSTANCE = new SourceWorkCoder();

    private SourceWorkCoder() {}

    @Override
    void write(SourceWork w, DataOutputStream out) throws IOException {
      writeString(w.conversion, out);
      RequestCoder.INSTANCE.write(w.request, out);
      writeString(w.fingerprint, out);
      out.writeInt(w.files);
      writeString(w.file.path(), out);
      writeStrings(w.file.tensors(), out);
      writeStrings(w.notes, out);
      out.writeLong(w.startMillis);
      out.writeBoolean(w.located != null);
      if (w.located != null) {
        writeString(w.located.path(), out);
        writeLocations(w.located.tensors(), out); // the file's order
        writeStrings(w.located.unindexed(), out);
      }
      writeNullable(w.error, out);
    }

    @Override
    SourceWork read(DataInputStream in) throws IOException {
      String conversion = readString(in);
      ConversionRequest request = RequestCoder.INSTANCE.read(in);
      String fingerprint = readString(in);
      int files = in.readInt();
      SourceFile file = new SourceFile(readString(in), readStrings(in));
      List<String> notes = readStrings(in);
      long start = in.readLong();
      LocatedFile located = null;
      if (in.readBoolean()) {
        String path = readString(in);
        located = new LocatedFile(path, readLocations(in), readStrings(in));
      }
      return new SourceWork(conversion, request, fingerprint, files, file, notes, start, located, readNullable(in));
    }
  }

  /** {@link CommitEvent}: its kind and the fields that kind carries. */
  static final class CommitEventCoder extends FieldCoder<CommitEvent> {
    private static final long serialVersionUID = 1L;
    static final CommitEventCoder INSTANCE = new CommitEventCoder();

    private CommitEventCoder() {}

    @Override
    void write(CommitEvent e, DataOutputStream out) throws IOException {
      writeString(e.kind.name(), out);
      out.writeBoolean(e.request != null);
      if (e.request != null) {
        RequestCoder.INSTANCE.write(e.request, out);
      }
      writeNullable(e.fingerprint, out);
      out.writeInt(e.expectedFiles);
      writeStrings(e.notes, out);
      out.writeLong(e.startMillis);
      out.writeBoolean(e.file != null);
      if (e.file != null) {
        WrittenFileCoder.INSTANCE.write(e.file, out);
      }
      writeNullable(e.target, out);
      writeNullable(e.message, out);
    }

    @Override
    CommitEvent read(DataInputStream in) throws IOException {
      CommitEvent.Kind kind = CommitEvent.Kind.valueOf(readString(in));
      ConversionRequest request = in.readBoolean() ? RequestCoder.INSTANCE.read(in) : null;
      String fingerprint = readNullable(in);
      int expected = in.readInt();
      List<String> notes = readStrings(in);
      long start = in.readLong();
      WrittenFile file = in.readBoolean() ? WrittenFileCoder.INSTANCE.read(in) : null;
      String target = readNullable(in);
      String message = readNullable(in);
      return new CommitEvent(kind, request, fingerprint, expected, notes, start, file, target, message);
    }

  }

  private static void writeLayout(LayoutOptions o, DataOutputStream out) throws IOException {
    out.writeInt(o.tp());
    out.writeInt(o.pp());
    out.writeInt(o.ep());
    out.writeInt(o.layersPerVirtualStage());
    int[] list = o.numLayerList();
    out.writeBoolean(list != null);
    if (list != null) {
      out.writeInt(list.length);
      for (int n : list) {
        out.writeInt(n);
      }
    }
    out.writeInt(o.noopLayers().size());
    for (int n : o.noopLayers()) { // sorted
      out.writeInt(n);
    }
    out.writeInt(o.numLayers());
    out.writeInt(o.firstKDense());
    out.writeInt(o.mtpLayers());
    out.writeBoolean(o.groupedGemm());
    out.writeBoolean(o.tpExtendEp());
    out.writeBoolean(o.mlaMmSplit());
    out.writeBoolean(o.dualpipe());
    writeString(o.keyNames().name(), out);
    writeNullable(o.nf4() == null ? null : o.nf4().name(), out);
    out.writeBoolean(o.v4Base());
    out.writeInt(o.expertTensorParallel());
  }

  private static LayoutOptions readLayout(DataInputStream in) throws IOException {
    LayoutOptions.Builder o = LayoutOptions.builder().tp(in.readInt()).pp(in.readInt()).ep(in.readInt())
        .layersPerVirtualStage(in.readInt());
    if (in.readBoolean()) {
      int[] list = new int[count(in)];
      for (int i = 0; i < list.length; i++) {
        list[i] = in.readInt();
      }
      o.numLayerList(list);
    }
    TreeSet<Integer> noop = new TreeSet<>();
    for (int n = count(in); n > 0; n--) {
      noop.add(in.readInt());
    }
    o.noopLayers(noop).numLayers(in.readInt()).firstKDense(in.readInt()).mtpLayers(in.readInt())
        .groupedGemm(in.readBoolean()).tpExtendEp(in.readBoolean()).mlaMmSplit(in.readBoolean())
        .dualpipe(in.readBoolean()).keyNames(McoreKeyNames.Scheme.valueOf(readString(in)));
    String nf4 = readNullable(in);
    return o.nf4(nf4 == null ? null : Nf4.Format.valueOf(nf4)).v4Base(in.readBoolean())
        .expertTensorParallel(in.readInt()).build();
  }

  private static void checkFormat(DataInputStream in) throws IOException {
    int format = in.readInt();
    if (format != FORMAT) {
      throw new CoderException("encoded with format " + format + " of ckptbeam's coders; this release reads format "
          + FORMAT);
    }
  }

  private static int count(DataInputStream in) throws IOException {
    int n = in.readInt();
    if (n < 0) {
      throw new CoderException("negative count " + n);
    }
    return n;
  }

  /** A string of any length (writeUTF stops at 64 KiB), as its UTF-8 bytes after their count. */
  private static void writeString(String s, DataOutputStream out) throws IOException {
    byte[] b = s.getBytes(StandardCharsets.UTF_8);
    out.writeInt(b.length);
    out.write(b);
  }

  private static String readString(DataInputStream in) throws IOException {
    byte[] b = new byte[count(in)];
    in.readFully(b);
    return new String(b, StandardCharsets.UTF_8);
  }

  private static void writeNullable(String s, DataOutputStream out) throws IOException {
    out.writeBoolean(s != null);
    if (s != null) {
      writeString(s, out);
    }
  }

  private static String readNullable(DataInputStream in) throws IOException {
    return in.readBoolean() ? readString(in) : null;
  }

  private static void writeStrings(List<String> list, DataOutputStream out) throws IOException {
    out.writeInt(list.size());
    for (String s : list) {
      writeString(s, out);
    }
  }

  private static List<String> readStrings(DataInputStream in) throws IOException {
    List<String> out = new ArrayList<>();
    for (int n = count(in); n > 0; n--) {
      out.add(readString(in));
    }
    return out;
  }
}
