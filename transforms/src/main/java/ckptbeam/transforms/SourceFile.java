package ckptbeam.transforms;

import java.io.Serializable;
import java.util.List;

/**
 * One input file of a conversion, read on its own when sources are located: a safetensors shard with the tensors
 * the index places in it, or a rank file (no list: the plan says what it holds).
 */
public record SourceFile(String path, List<String> tensors) implements Serializable {
  public SourceFile {
    tensors = List.copyOf(tensors);
  }

  /** A file whose contents the plan knows (a rank file). */
  public static SourceFile of(String path) {
    return new SourceFile(path, List.of());
  }
}
