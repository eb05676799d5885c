package ckptbeam.transforms.beam;

import java.io.Serializable;
import java.util.List;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import org.apache.beam.sdk.coders.AtomicCoder;
import org.apache.beam.sdk.coders.DefaultCoder;
import org.apache.beam.sdk.coders.ListCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;

/** A safetensors shard and the tensors the index says it holds. */
@DefaultCoder(ShardRef.Coder.class)
public final class ShardRef implements Serializable {
  private static final long serialVersionUID = 1L;

  public final String path;
  public final List<String> tensors;

  /** A deterministic coder: the path, then the names. */
  public static final class Coder extends AtomicCoder<ShardRef> {
    private static final ListCoder<String> NAMES = ListCoder.of(StringUtf8Coder.of());

    public static Coder of() {
      return new Coder();
    }

    @Override
    public void encode(ShardRef value, OutputStream out) throws IOException {
      StringUtf8Coder.of().encode(value.path, out);
      NAMES.encode(value.tensors, out);
    }

    @Override
    public ShardRef decode(InputStream in) throws IOException {
      return new ShardRef(StringUtf8Coder.of().decode(in), NAMES.decode(in));
    }
  }

  public ShardRef(String path, List<String> tensors) {
    this.path = path;
    this.tensors = List.copyOf(tensors);
  }

  @Override
  public boolean equals(Object other) {
    if (!(other instanceof ShardRef)) {
      return false;
    }
    ShardRef o = (ShardRef) other;
    return java.util.Objects.equals(path, o.path) && tensors == o.tensors;
  }

  @Override
  public int hashCode() {
    return java.util.Objects.hash(path, tensors);
  }
}
