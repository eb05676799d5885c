package ckptbeam.transforms;

import java.io.Serializable;
import java.util.List;

/** A safetensors shard and the tensors the index says it holds. */
public record ShardRef(String path, List<String> tensors) implements Serializable {
  public ShardRef {
    tensors = List.copyOf(tensors);
  }
}
