package ckptbeam.transforms.beam;

import java.io.Serializable;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.apache.beam.sdk.coders.SerializableCoder;

/** A finished output file: where it is, how big, how many tensors. */
@DefaultCoder(SerializableCoder.class)
public final class WrittenFile implements Serializable, Comparable<WrittenFile> {
  private static final long serialVersionUID = 1L;

  public final String relativePath;
  public final long bytes;
  public final int tensors;
  public final long tensorBytes;

  public WrittenFile(String relativePath, long bytes, int tensors, long tensorBytes) {
    this.relativePath = relativePath;
    this.bytes = bytes;
    this.tensors = tensors;
    this.tensorBytes = tensorBytes;
  }

  @Override
  public int compareTo(WrittenFile o) {
    return relativePath.compareTo(o.relativePath);
  }

  @Override
  public String toString() {
    return relativePath + " (" + tensors + " tensors, " + bytes + " bytes)";
  }

  @Override
  public boolean equals(Object other) {
    if (!(other instanceof WrittenFile)) {
      return false;
    }
    WrittenFile o = (WrittenFile) other;
    return java.util.Objects.equals(relativePath, o.relativePath) && bytes == o.bytes && tensors == o.tensors && tensorBytes == o.tensorBytes;
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(relativePath, bytes, tensors, tensorBytes);
  }
}
