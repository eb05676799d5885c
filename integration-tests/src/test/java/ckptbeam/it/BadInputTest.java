package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Bad input: a non-zero exit, one clear message naming what is wrong, and nothing left that looks like a finished
 * checkpoint (no tracker file).
 */
class BadInputTest {
  @TempDir static Path shared;
  @TempDir Path work;
  static Path pristine;

  @BeforeAll
  static void model() {
    pristine = Checkpoints.tinyModel(shared.resolve("hf"));
  }

  private Path copy() throws IOException {
    Path dst = work.resolve("hf");
    Files.createDirectories(dst);
    try (Stream<Path> s = Files.list(pristine)) {
      for (Path p : s.collect(Collectors.toList())) {
        Files.copy(p, dst.resolve(p.getFileName()));
      }
    }
    return dst;
  }

  private Checkpoints.Run convert(Path hf, String... extra) {
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("out").toString()));
    args.addAll(List.of(extra));
    return Checkpoints.cli(args.toArray(new String[0]));
  }

  /** Asserts failure with a message containing every fragment, and no finished-looking output. */
  private void fails(Checkpoints.Run r, String... fragments) {
    assertNotEquals(0, r.exit, r.toString());
    for (String f : fragments) {
      assertTrue(r.err.contains(f), "expected \"" + f + "\" in: " + r.err);
    }
    assertEquals(1, r.err.strip().lines().count(), "one message: " + r.err);
    assertFalse(Files.exists(work.resolve("out/latest_checkpointed_iteration.txt")), "tracker written");
  }

  private static String shard(Path hf, int i) throws IOException {
    try (Stream<Path> s = Files.list(hf)) {
      return s.map(p -> p.getFileName().toString()).filter(n -> n.startsWith(String.format("model-%05d", i)))
          .findFirst().orElseThrow();
    }
  }

  private static void edit(Path file, String from, String to) throws IOException {
    String s = Files.readString(file, StandardCharsets.UTF_8);
    assertTrue(s.contains(from), from);
    Files.writeString(file, s.replace(from, to), StandardCharsets.UTF_8);
  }

  @Test
  void missingLoadDir() {
    fails(convert(work.resolve("nope")), "--load-dir", "nope", "no such directory");
    assertFalse(Files.exists(work.resolve("out")));
  }

  @Test
  void missingConfig() throws IOException {
    Path hf = copy();
    Files.delete(hf.resolve("config.json"));
    fails(convert(hf), hf.resolve("config.json").toString(), "no such file");
  }

  @Test
  void invalidConfig() throws IOException {
    Path hf = copy();
    Files.writeString(hf.resolve("config.json"), "{\"hidden_size\": 64,");
    fails(convert(hf), "config.json: not valid JSON");
    edit(hf.resolve("config.json"), "{\"hidden_size\": 64,", "{\"hidden_size\": 64}");
    fails(convert(hf), "config.json: field \"vocab_size\" is missing");
  }

  @Test
  void configThatDisagreesWithTheShards() throws IOException {
    Path hf = copy();
    edit(hf.resolve("config.json"), "\"vocab_size\" : 128", "\"vocab_size\" : 256");
    // embed_tokens and lm_head are both wrong; which is reported first depends on the runner's order
    fails(convert(hf), ".weight\" has shape [128, 64] but config.json implies [256, 64]");
  }

  /**
   * A folder without an index (as a single {@code model.safetensors} is saved) is read from its shards' headers, the
   * same rank files as with the index; a tensor in two of its shards is then refused, naming both. With an index, a
   * shard it does not name is not read, and a note says so.
   */
  @Test
  void aFolderWithoutAnIndexIsReadFromItsShards() throws IOException {
    Path hf = copy();
    assertEquals(0, Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("out-index").toString()).exit);
    TreeMap<String, byte[]> withIndex = Checkpoints.dataContents(work.resolve("out-index"));
    String second = shard(hf, 2);
    Files.copy(hf.resolve(second), hf.resolve("model-copy.safetensors"));
    Checkpoints.Run noted = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("out-noted").toString());
    assertEquals(0, noted.exit, noted.toString());
    assertTrue((noted.out + noted.err).contains("1 *.safetensors file(s) in " + hf + " are not named by its index "
        + "and are not read, e.g. model-copy.safetensors"), noted.toString());
    Files.delete(hf.resolve("model.safetensors.index.json"));
    fails(convert(hf), "model-copy.safetensors", "DuplicateTensor", "is also in " + second);
    Files.delete(hf.resolve("model-copy.safetensors"));
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("out-no-index").toString());
    assertEquals(0, r.exit, r.toString());
    TreeMap<String, byte[]> without = Checkpoints.dataContents(work.resolve("out-no-index"));
    assertEquals(withIndex.keySet(), without.keySet());
    withIndex.forEach((name, bytes) -> assertArrayEquals(bytes, without.get(name), name));
  }

  @Test
  void indexNamingAMissingShard() throws IOException {
    Path hf = copy();
    String name = shard(hf, 2);
    Files.delete(hf.resolve(name));
    fails(convert(hf), name, "the index names this shard", "does not exist");
    assertFalse(Files.exists(work.resolve("out")), "nothing is written before the input is checked");
  }

  @Test
  void indexNamingATensorTheShardLacks() throws IOException {
    Path hf = copy();
    String first = shard(hf, 1);
    String third = shard(hf, 3);
    edit(hf.resolve("model.safetensors.index.json"), "\"model.embed_tokens.weight\": \"" + first + "\"",
        "\"model.embed_tokens.weight\": \"" + third + "\"");
    fails(convert(hf), third, "tensor \"model.embed_tokens.weight\"", "does not hold it");
    if (Files.exists(work.resolve("out"))) {
      try (Stream<Path> s = Files.walk(work.resolve("out"))) {
        assertTrue(s.noneMatch(p -> p.toString().endsWith(".pt")), "no rank file written");
      }
    }
  }

  @Test
  void indexLackingANeededTensor() throws IOException {
    Path hf = copy();
    String first = shard(hf, 1);
    edit(hf.resolve("model.safetensors.index.json"), "\"model.embed_tokens.weight\": \"" + first + "\",", "");
    fails(convert(hf), "not in the index", "model.embed_tokens.weight");
  }

  @Test
  void indexEscapingTheFolder() throws IOException {
    Path hf = copy();
    String first = shard(hf, 1);
    edit(hf.resolve("model.safetensors.index.json"), "\"model.embed_tokens.weight\": \"" + first + "\"",
        "\"model.embed_tokens.weight\": \"../" + first + "\"");
    fails(convert(hf), "UnsafeShardName", "../" + first);
  }

  @Test
  void truncatedShard() throws IOException {
    Path hf = copy();
    String name = shard(hf, 2);
    try (RandomAccessFile f = new RandomAccessFile(hf.resolve(name).toFile(), "rw")) {
      f.setLength(f.length() - 10);
    }
    fails(convert(hf), name, "MetadataIncompleteBuffer");
  }

  @Test
  void shardWithAnOversizedHeaderLength() throws IOException {
    Path hf = copy();
    String name = shard(hf, 1);
    try (RandomAccessFile f = new RandomAccessFile(hf.resolve(name).toFile(), "rw")) {
      f.write(new byte[] {0, 0, 0, 0, 0, 0, 0, 0x7F});
    }
    fails(convert(hf), name, "HeaderTooLarge");
  }

  @Test
  void saveDirHoldingACheckpointIsRefusedUnlessOverwrite() throws IOException {
    Path hf = copy();
    assertEquals(0, convert(hf).exit);
    Checkpoints.Run again = convert(hf);
    assertNotEquals(0, again.exit);
    assertTrue(again.err.contains("is not empty (it holds a checkpoint); pass --overwrite"), again.err);
    assertTrue(Files.exists(work.resolve("out/latest_checkpointed_iteration.txt")), "refusal deletes nothing");
    assertEquals(0, convert(hf, "--overwrite").exit);
  }

  @Test
  void flags() throws IOException {
    Path hf = copy();
    Checkpoints.Run unknown = convert(hf, "--no-such-flag=3");
    assertEquals(2, unknown.exit);
    assertTrue(unknown.err.contains("unknown flag --no-such-flag"), unknown.err);
    Checkpoints.Run nf4 = convert(hf, "--qlora-nf4", "--nf4-format", "int4");
    assertTrue(nf4.err.contains("--nf4-format must be \"npu\""), nf4.err);
    fails(convert(hf, "--target-tensor-parallel-size", "3"), "is not divisible by --target-tensor-parallel-size = 3");
    fails(convert(hf, "--target-pipeline-parallel-size", "x"), "--target-pipeline-parallel-size must be an integer");
    assertFalse(Files.exists(work.resolve("out")));
  }

  @Test
  void quantisationOtherThanDeepSeeksFp8IsRefusedClearly() throws IOException {
    Path hf = copy();
    edit(hf.resolve("config.json"), "\"model_type\"",
        "\"quantization_config\" : {\"quant_method\": \"awq\"}, \"model_type\"");
    fails(convert(hf), "quantization_config", "awq", "only DeepSeek's \"fp8\"");
  }

  @Test
  void aShardThatIsASymlinkOutOfTheFolder() throws IOException {
    Path hf = copy();
    String name = shard(hf, 2);
    Path outside = work.resolve("elsewhere.safetensors");
    Files.move(hf.resolve(name), outside);
    Files.createSymbolicLink(hf.resolve(name), outside);
    fails(convert(hf), name, "OutsideCheckpoint", "symbolic link");
  }

  @Test
  void nonUtf8Json() throws IOException {
    Path hf = copy();
    byte[] index = Files.readAllBytes(hf.resolve("model.safetensors.index.json"));
    index[20] = (byte) 0xC3;
    index[21] = (byte) 0x28;
    Files.write(hf.resolve("model.safetensors.index.json"), index);
    fails(convert(hf), "model.safetensors.index.json", "InvalidIndex", "not valid JSON");
    Path hf2 = work.resolve("hf2");
    Files.createDirectories(hf2);
    Files.copy(pristine.resolve("config.json"), hf2.resolve("config.json"));
    byte[] config = Files.readAllBytes(hf2.resolve("config.json"));
    config[5] = (byte) 0xFF;
    Files.write(hf2.resolve("config.json"), config);
    fails(convert(hf2), "config.json: not valid JSON");
  }

  @Test
  void aTensorInTwoShardsIsRefusedWhateverTheIndexSays() throws Exception {
    Path hf = copy();
    Path index = hf.resolve("model.safetensors.index.json");
    String shard1 = "model-00001-of-000003.safetensors";
    Files.copy(hf.resolve(shard1), hf.resolve("model-extra.safetensors"));
    // the index moves the embedding to the copy; the original shard still stores it (and the rest)
    String json = Files.readString(index);
    String entry = "\"model.embed_tokens.weight\": \"" + shard1 + "\"";
    assertTrue(json.contains(entry), json);
    Files.writeString(index, json.replace(entry, "\"model.embed_tokens.weight\": \"model-extra.safetensors\""));
    fails(convert(hf), "is stored in two shards", shard1, "model-extra.safetensors");
  }

  @Test
  void aTensorAShardStoresButTheIndexOmitsIsNotedAsNotConverted() throws Exception {
    Path hf = copy();
    Path index = hf.resolve("model.safetensors.index.json");
    String json = Files.readString(index);
    String omitted = "model.layers.4.eh_proj.weight";
    Files.writeString(index, json.replaceFirst("\\s*\"" + omitted.replace(".", "\\.") + "\": \"[^\"]+\",", ""));
    String written = Files.readString(index);
    assertFalse(written.contains(omitted), written);
    Checkpoints.Run r = convert(hf);
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("note: 1 tensor(s) stored in shards but absent from the index are not converted, e.g. "
        + omitted + " in " + hf.resolve("model-00003-of-000003.safetensors")), r.out);
  }
}
