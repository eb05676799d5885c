package ckptbeam.transforms;

import ckptbeam.io.tensor.TensorLocation;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What one input file holds, read from its header or pickle alone (never tensor bytes): every source it provides
 * under its pipeline name, in the file's order, and for a shard the tensors it stores that the index does not name.
 * Checks that need every file (a tensor in two shards, parts of one tensor in different dtypes) come after, in
 * {@link InputSources#assemble}.
 */
public record LocatedFile(String path, Map<String, TensorLocation> tensors, List<String> unindexed) {
  public LocatedFile {
    tensors = Collections.unmodifiableMap(new LinkedHashMap<>(tensors));
    unindexed = List.copyOf(unindexed);
  }
}
