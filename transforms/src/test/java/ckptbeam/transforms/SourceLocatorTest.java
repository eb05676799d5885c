package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import ckptbeam.io.safetensors.SafetensorsWriter;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorSpec;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Where sources are, from real safetensors headers; ambiguous or inconsistent shards are refused by name. */
class SourceLocatorTest {
  @TempDir Path work;

  private Path shard(String name, String... tensors) throws IOException {
    Path file = work.resolve(name);
    List<TensorSpec> specs = new ArrayList<>();
    for (String t : tensors) {
      specs.add(new TensorSpec(t, DType.BF16, Shape.of(2, 2), sink -> sink.write(ByteBuffer.allocate(8))));
    }
    try (FileChannel out = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      SafetensorsWriter.write(out, specs, SafetensorsWriter.PT_METADATA);
    }
    return file;
  }

  @Test
  void locatesWhatTheIndexPlacesInEachShard() throws Exception {
    Path a = shard("a.safetensors", "w", "x");
    Path b = shard("b.safetensors", "y");
    var located = SourceLocator.hfShards(List.of(new SourceFile(a.toString(), List.of("w", "x")),
        new SourceFile(b.toString(), List.of("y"))));
    assertEquals(List.of("w", "x", "y"), new ArrayList<>(located.keySet()));
    assertEquals(b.toString(), located.get("y").file());
    assertEquals(Shape.of(2, 2), located.get("x").shape());
  }

  @Test
  void aTensorStoredInTwoShardsIsRefusedWhateverTheIndexSays() throws Exception {
    Path a = shard("a.safetensors", "w", "x");
    Path b = shard("b.safetensors", "y", "w");
    IOException e = assertThrows(IOException.class, () -> SourceLocator.hfShards(List.of(
        new SourceFile(a.toString(), List.of("w", "x")), new SourceFile(b.toString(), List.of("y")))));
    assertEquals("tensor \"w\" is stored in two shards, " + a + " and " + b + "; refusing to choose one copy "
        + "(loaders disagree on which wins)", e.getMessage());
  }

  @Test
  void aTensorTheIndexPlacesInAShardThatLacksItIsNamed() throws Exception {
    Path a = shard("a.safetensors", "w");
    IOException e = assertThrows(IOException.class, () -> SourceLocator.hfShards(List.of(
        new SourceFile(a.toString(), List.of("w", "z")))));
    assertEquals(a + ": the index places tensor \"z\" in this shard, but the shard does not hold it", e.getMessage());
  }

  /**
   * Shards are read one by one, anywhere, and arrive in any order: what is assembled from them (locations, the
   * tensors the index omits, the shard a duplicate is reported in) does not depend on that order.
   */
  @Test
  void shardsLocatedInAnyOrderAssembleTheSame() throws Exception {
    Path a = shard("a.safetensors", "w", "x", "extra");
    Path b = shard("b.safetensors", "y");
    LocatedFile la = SourceLocator.hfShard(new SourceFile(a.toString(), List.of("w", "x")));
    LocatedFile lb = SourceLocator.hfShard(new SourceFile(b.toString(), List.of("y")));
    assertEquals(List.of("extra"), la.unindexed());
    Map<String, String> unindexed = new TreeMap<>();
    var inOrder = SourceLocator.hfShardsLocated(List.of(la, lb), unindexed);
    var reversed = SourceLocator.hfShardsLocated(List.of(lb, la), new TreeMap<>());
    assertEquals(new ArrayList<>(inOrder.keySet()), new ArrayList<>(reversed.keySet()));
    assertEquals(Map.of("extra", a.toString()), unindexed);

    Path c = shard("c.safetensors", "w");
    LocatedFile lc = SourceLocator.hfShard(new SourceFile(c.toString(), List.of()));
    for (List<LocatedFile> order : List.of(List.of(la, lc), List.of(lc, la))) {
      IOException e = assertThrows(IOException.class, () -> SourceLocator.hfShardsLocated(order, new TreeMap<>()));
      assertEquals("tensor \"w\" is stored in two shards, " + a + " and " + c + "; refusing to choose one copy "
          + "(loaders disagree on which wins)", e.getMessage());
    }
  }
}
