package ckptbeam.transforms;

import java.io.Serializable;
import java.util.List;
import java.util.Objects;

/** A safetensors shard and the tensors the index says it holds. */
public final class ShardRef implements Serializable {
  private static final long serialVersionUID = 1L;

  public final String path;
  public final List<String> tensors;

  public ShardRef(String path, List<String> tensors) {
    this.path = path;
    this.tensors = List.copyOf(tensors);
  }

  @Override
  public boolean equals(Object other) {
    return other instanceof ShardRef && path.equals(((ShardRef) other).path)
        && tensors.equals(((ShardRef) other).tensors);
  }

  @Override
  public int hashCode() {
    return Objects.hash(path, tensors);
  }
}
