package ckptbeam.transforms.beam;

import java.io.Serializable;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;

/**
 * A finished output file: where it is, its size and SHA-256, and every tensor in it with its sources. Its coder is
 * {@link ConversionCoders.WrittenFileCoder}.
 */
public final class WrittenFile implements Serializable, Comparable<WrittenFile> {
  private static final long serialVersionUID = 2L;

  /** One tensor of a written file: its key ({@code model0/decoder…} in rank files), dtype, shape, sources. */
  public static final class Tensor implements Serializable {
    private static final long serialVersionUID = 1L;

    public final String key;
    public final String dtype;
    public final long[] shape;
    public final List<String> sources;

    public Tensor(String key, String dtype, long[] shape, List<String> sources) {
      this.key = key;
      this.dtype = dtype;
      this.shape = shape.clone();
      this.sources = List.copyOf(sources);
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof Tensor && key.equals(((Tensor) o).key) && dtype.equals(((Tensor) o).dtype)
          && Arrays.equals(shape, ((Tensor) o).shape) && sources.equals(((Tensor) o).sources);
    }

    @Override
    public int hashCode() {
      return Objects.hash(key, dtype, Arrays.hashCode(shape), sources);
    }
  }

  public final String relativePath;
  public final long bytes;
  public final long tensorBytes;
  public final String sha256;
  public final List<Tensor> contents;
  /** Whether a {@code --resume} run found this file complete and kept it. */
  public final boolean reused;

  public WrittenFile(String relativePath, long bytes, long tensorBytes, String sha256, List<Tensor> contents,
      boolean reused) {
    this.relativePath = relativePath;
    this.bytes = bytes;
    this.tensorBytes = tensorBytes;
    this.sha256 = sha256;
    this.contents = List.copyOf(contents);
    this.reused = reused;
  }

  public WrittenFile reused() {
    return new WrittenFile(relativePath, bytes, tensorBytes, sha256, contents, true);
  }

  public int tensors() {
    return contents.size();
  }

  @Override
  public int compareTo(WrittenFile o) {
    return relativePath.compareTo(o.relativePath);
  }

  @Override
  public boolean equals(Object other) {
    if (!(other instanceof WrittenFile)) {
      return false;
    }
    WrittenFile o = (WrittenFile) other;
    return relativePath.equals(o.relativePath) && bytes == o.bytes && tensorBytes == o.tensorBytes
        && Objects.equals(sha256, o.sha256) && contents.equals(o.contents) && reused == o.reused;
  }

  @Override
  public int hashCode() {
    return Objects.hash(relativePath, bytes, sha256);
  }

  @Override
  public String toString() {
    return relativePath + " (" + contents.size() + " tensors, " + bytes + " bytes)";
  }
}
