package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.storage.Sha256;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.attribute.FileTime;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/**
 * {@code watch} in streaming mode on the DirectRunner and on Flink [local]: checkpoints land in a watched folder at
 * different times, one of them shard by shard, one corrupt; each good one is converted once, when complete,
 * bit-exact; the corrupt one gets a failure record and does not stop the others; a restart redoes nothing.
 */
class WatchTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String LAYOUT = "--target-expert-parallel-size 2 --moe-grouped-gemm";

  @TempDir static Path work;
  static Path hf;
  static Path expected;

  @BeforeAll
  static void model() {
    hf = Checkpoints.tinyModel(work.resolve("hf"));
    expected = work.resolve("expected");
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        expected.toString()));
    args.addAll(List.of(LAYOUT.split(" ")));
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
  }

  @ParameterizedTest(name = "{0}")
  @ValueSource(strings = {"direct", "flink"})
  void convertsEachCompleteCheckpointOnceAndSurvivesABadOne(String runner) throws Exception {
    Path incoming = Files.createDirectories(work.resolve(runner + "/incoming"));
    Path converted = work.resolve(runner + "/converted");
    List<String> runnerFlags = runner.equals("flink")
        ? List.of("--runner=FlinkRunner", "--flinkMaster=[local]", "--parallelism=2") : List.of();

    Instant started = Instant.now();
    CompletableFuture<Checkpoints.Run> watch = CompletableFuture.supplyAsync(
        () -> watch(incoming, converted, 8, runnerFlags));
    Thread.sleep(2000);
    copy(hf, incoming.resolve("first"), 0);
    // the second arrives index first, then one shard every 1.5 s: it must not be converted before the last one
    Instant lastShard = copy(hf, incoming.resolve("second"), 1500);
    // the third is complete but its config is not JSON (prepared aside, then moved in at once)
    Path third = copy(hf, work.resolve(runner + "/third"), 0) != null ? work.resolve(runner + "/third") : null;
    Files.writeString(third.resolve("config.json"), "{ this is not json");
    Files.move(third, incoming.resolve("third"), StandardCopyOption.ATOMIC_MOVE);
    Checkpoints.Run r = watch.get(5, TimeUnit.MINUTES);
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("3 checkpoint(s) seen, 2 converted, 0 already converted, 1 failed"), r.out);
    // one listing per poll interval (1 s) over the run, not a busy loop (Flink resumed Watch at once)
    long polls = Long.parseLong(r.out.replaceAll("(?s).* (\\d+) poll\\(s\\).*", "$1"));
    long seconds = Duration.between(started, Instant.now()).getSeconds();
    assertTrue(polls >= 3 && polls <= seconds + 5, polls + " polls in " + seconds + " s");

    for (String name : List.of("first", "second")) {
      Checkpoints.assertSameFiles(expected, converted.resolve(name), false);
      JsonNode status = status(converted, name);
      assertEquals("converted", status.get("state").asText(), status.toString());
      assertTrue(status.get("files").size() >= 2, status.toString());
      for (JsonNode f : status.get("files")) {
        Path file = converted.resolve(name).resolve(f.get("path").asText());
        assertEquals(Sha256.ofFile(file.toString()), f.get("sha256").asText(), file.toString());
        assertEquals(Files.size(file), f.get("size").asLong(), file.toString());
      }
      assertTrue(status.get("tensors").asLong() > 0 && status.get("bytes").asLong() > 0, status.toString());
    }
    assertTrue(Instant.parse(status(converted, "second").get("start").asText()).isAfter(lastShard),
        "the slowly written checkpoint was converted only once complete");
    JsonNode bad = status(converted, "third");
    assertEquals("failed", bad.get("state").asText());
    assertTrue(bad.get("error").asText().contains("config.json"), bad.toString());
    assertTrue(!Files.exists(converted.resolve("third/latest_checkpointed_iteration.txt")));

    // a restart finds both outputs finished and converts nothing again
    FileTime before = Files.getLastModifiedTime(converted.resolve("first/latest_checkpointed_iteration.txt"));
    Checkpoints.Run again = watch(incoming, converted, 3, runnerFlags);
    assertEquals(0, again.exit, again.toString());
    assertTrue(again.out.contains("0 converted, 2 already converted"), again.out);
    assertEquals(before, Files.getLastModifiedTime(converted.resolve("first/latest_checkpointed_iteration.txt")));
    Checkpoints.assertSameFiles(expected, converted.resolve("first"), false);
  }

  @Test
  void mcoreCheckpointsAreWatchedToo() throws Exception {
    Path incoming = Files.createDirectories(work.resolve("mcore-in"));
    Path converted = work.resolve("mcore-out");
    String layout = LAYOUT.replace("--target-", "--source-");
    List<String> batch = new ArrayList<>(List.of("mcore2hf", "--load-dir", expected.toString(), "--save-dir",
        work.resolve("mcore-expected").toString()));
    batch.addAll(List.of(layout.split(" ")));
    assertEquals(0, Checkpoints.cli(batch.toArray(new String[0])).exit);
    // rank files first, the tracker last, as Megatron saves
    Path ck = incoming.resolve("iter-1");
    try (Stream<Path> s = Files.walk(expected)) {
      for (Path f : s.filter(Files::isRegularFile).sorted().toList()) {
        if (!f.getFileName().toString().equals("latest_checkpointed_iteration.txt")) {
          Files.createDirectories(ck.resolve(expected.relativize(f)).getParent());
          Files.copy(f, ck.resolve(expected.relativize(f)));
        }
      }
    }
    Files.copy(expected.resolve("latest_checkpointed_iteration.txt"), ck.resolve("latest_checkpointed_iteration.txt"));
    List<String> args = new ArrayList<>(List.of("watch", "--direction", "mcore2hf", "--input-pattern",
        incoming + "/*", "--save-root", converted.toString(), "--poll-interval", "1", "--stop-after-idle", "3"));
    args.addAll(List.of(layout.split(" ")));
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("1 checkpoint(s) seen, 1 converted"), r.out);
    Checkpoints.assertSameFiles(work.resolve("mcore-expected"), converted.resolve("iter-1"), false);
  }

  /**
   * As the batch command, watch takes a DeepSeek-V4 checkpoint's layout from its rank files' args (no layout flag
   * given), its dimensions from --hf-cfg-dir (the trainer saves no config.json), and checks MindSpeed's model type
   * against each checkpoint: a disagreeing one is reported failed, naming both.
   */
  @Test
  void v4McoreCheckpointsTakeTheirLayoutFromTheirArgsAndAreCheckedAgainstTheModelType() throws Exception {
    Path v4 = Checkpoints.tinyModel(work.resolve("v4/hf"), "--v4", "--layers", "4");
    Path ck = work.resolve("v4/incoming/ck");
    Checkpoints.Run written = Checkpoints.cli("hf2mcore", "--load-dir", v4.toString(), "--save-dir", ck.toString(),
        "--target-tensor-parallel-size", "2", "--target-pipeline-parallel-size", "2", "--moe-grouped-gemm",
        "--mtp-num-layers", "1", "--quiet");
    assertEquals(0, written.exit, written.toString());
    Files.delete(ck.resolve("config.json"));
    Path converted = work.resolve("v4/converted");
    Checkpoints.Run r = Checkpoints.cli("watch", "--direction", "mcore2hf", "--input-pattern",
        work.resolve("v4/incoming") + "/*", "--save-root", converted.toString(), "--poll-interval", "1",
        "--stop-after-idle", "3", "--hf-cfg-dir", v4.toString());
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("1 checkpoint(s) seen, 1 converted"), r.out);
    String report = RoundTripTest.roundTrip(v4, converted.resolve("ck"), "");
    assertTrue(report.startsWith("OK "), report);
    Path refused = work.resolve("v4/refused");
    r = Checkpoints.cli("watch", "--direction", "mcore2hf", "--input-pattern", work.resolve("v4/incoming") + "/*",
        "--save-root", refused.toString(), "--poll-interval", "1", "--stop-after-idle", "3", "--hf-cfg-dir",
        v4.toString(), "--model-type-hf", "deepseek3");
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("1 checkpoint(s) seen, 0 converted, 0 already converted, 1 failed"), r.out);
    JsonNode status = status(refused, "ck");
    assertTrue(status.get("error").asText().contains("--model-type-hf deepseek3 names DeepSeek-V3 but the "
        + "checkpoint's config.json is DeepSeek-V4"), status.toString());
    assertTrue(!Files.exists(refused.resolve("ck")), "nothing written for the refused checkpoint");
  }

  @Test
  void aFolderThatLinksOutOfTheWatchedPatternIsNotConverted() throws Exception {
    Path incoming = Files.createDirectories(work.resolve("links/incoming"));
    Path converted = work.resolve("links/converted");
    // a checkpoint outside the watched pattern, and a link to it dropped into the watched folder; a link to a
    // folder inside the pattern is converted
    Path outside = copy(hf, work.resolve("links/private/hf"), 0) != null ? work.resolve("links/private/hf") : null;
    Files.createSymbolicLink(incoming.resolve("evil"), outside);
    copy(hf, incoming.resolve("real"), 0);
    Files.createSymbolicLink(incoming.resolve("alias"), incoming.resolve("real"));
    Checkpoints.Run r = watch(incoming, converted, 3, List.of());
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("3 checkpoint(s) seen, 2 converted, 0 already converted, 1 failed"), r.out);
    JsonNode evil = status(converted, "evil");
    assertEquals("failed", evil.get("state").asText(), evil.toString());
    assertEquals("the folder " + incoming.resolve("evil") + " is a symbolic link to " + outside.toRealPath()
        + ", which is outside the watched pattern " + incoming + "/*; not converted", evil.get("error").asText());
    assertTrue(!Files.exists(converted.resolve("evil")), "nothing of the linked folder was written");
    Checkpoints.assertSameFiles(expected, converted.resolve("real"), false);
    Checkpoints.assertSameFiles(expected, converted.resolve("alias"), false);
  }

  @Test
  void badWatchFlagsAreRefusedWithTheirName() {
    Checkpoints.Run r = Checkpoints.cli("watch", "--direction", "sideways", "--input-pattern", "x/*", "--save-root",
        "y");
    assertEquals(2, r.exit);
    assertTrue(r.err.contains("--direction must be hf2mcore or mcore2hf"), r.err);
    r = Checkpoints.cli("watch", "--direction", "hf2mcore", "--input-pattern", "x/*", "--save-root", "y",
        "--save-dir", "z");
    assertEquals(2, r.exit);
    assertTrue(r.err.contains("--save-dir is set by watch"), r.err);
    r = Checkpoints.cli("watch", "--direction", "hf2mcore", "--input-pattern", "x/*", "--save-root", "y",
        "--target-tensor-parallel-size", "two");
    assertEquals(2, r.exit);
    assertTrue(r.err.contains("--target-tensor-parallel-size"), r.err);
    r = Checkpoints.cli("watch", "--direction", "hf2mcore", "--save-root", "y");
    assertEquals(2, r.exit);
    assertTrue(r.err.contains("--input-pattern"), r.err);
    r = Checkpoints.cli("watch", "--direction", "mcore2hf", "--input-pattern", "x/*", "--save-root", "y",
        "--hf-cfg-dir", work.resolve("no-such-hf").toString());
    assertEquals(2, r.exit, r.toString());
    assertTrue(r.err.contains("--hf-cfg-dir " + work.resolve("no-such-hf") + " has no config.json"), r.err);
  }

  private static Checkpoints.Run watch(Path incoming, Path converted, int idleSeconds, List<String> runnerFlags) {
    List<String> args = new ArrayList<>(List.of("watch", "--direction", "hf2mcore", "--input-pattern",
        incoming + "/*/", "--save-root", converted.toString(), "--poll-interval", "1", "--stop-after-idle",
        String.valueOf(idleSeconds)));
    args.addAll(List.of(LAYOUT.split(" ")));
    args.addAll(runnerFlags);
    return Checkpoints.cli(args.toArray(new String[0]));
  }

  /**
   * Copies a HF checkpoint the way a slow writer would: config and index first, then the shards, {@code pauseMs}
   * apart; returns the time just before the last shard's final bytes were written.
   */
  static Instant copy(Path from, Path to, long pauseMs) throws Exception {
    Files.createDirectories(to);
    List<Path> shards = new ArrayList<>();
    try (Stream<Path> s = Files.list(from)) {
      for (Path f : s.sorted().toList()) {
        if (f.toString().endsWith(".safetensors")) {
          shards.add(f);
        } else {
          Files.copy(f, to.resolve(f.getFileName()));
        }
      }
    }
    Instant last = Instant.now();
    for (Path shard : shards) {
      Thread.sleep(pauseMs);
      last = Instant.now();
      if (pauseMs > 0) {
        // half a shard first: a poll in between sees a file shorter than its header says
        byte[] bytes = Files.readAllBytes(shard);
        Path dest = to.resolve(shard.getFileName());
        Files.write(dest, Arrays.copyOf(bytes, bytes.length / 2));
        Thread.sleep(pauseMs / 2);
        last = Instant.now();
        Files.write(dest, bytes);
      } else {
        Files.copy(shard, to.resolve(shard.getFileName()));
      }
    }
    return last;
  }

  static JsonNode status(Path converted, String name) throws Exception {
    return JSON.readTree(Files.readString(converted.resolve(name + ".ckptbeam-status.json"), StandardCharsets.UTF_8));
  }
}
