package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.ServerSocket;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * A real Flink 1.19 session cluster, one JobManager and two TaskManagers as separate JVMs started by
 * {@code scripts/local-flink-cluster.sh}; conversions are submitted to it through its REST port with the
 * {@code -flinkjob} jar staged, exactly as a user would, and compared byte for byte with the DirectRunner's.
 */
class FlinkClusterTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String LAYOUT = "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
      + "--target-expert-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1";

  @TempDir static Path work;
  static Path clusterDir;
  static int restPort;
  static Path hf;
  static Path directMcore;
  /** The TaskManager the test killed: who reaps it is up to this machine's init, so it may linger as a zombie. */
  static long killedTaskManager = -1;

  @BeforeAll
  static void startCluster() throws Exception {
    clusterDir = work.resolve("cluster");
    restPort = freePort();
    Script start = script("start");
    assertEquals(0, start.exit, start.output);
    assertEquals(2, overview().get("taskmanagers").asInt(), "both TaskManagers registered");
    hf = Checkpoints.tinyModel(work.resolve("hf"));
    directMcore = convert("hf2mcore", hf, work.resolve("direct-mcore"), LAYOUT);
  }

  @AfterAll
  static void stopCluster() throws Exception {
    List<Long> pids = new ArrayList<>();
    try (Stream<Path> s = Files.list(clusterDir)) {
      for (Path f : s.filter(p -> p.toString().endsWith(".pid")).toList()) {
        pids.add(Long.parseLong(Files.readString(f).trim()));
      }
    }
    assertTrue(pids.size() >= 3, "one JobManager and two TaskManagers (and a replacement) were started: " + pids);
    Script stop = script("stop");
    assertEquals(0, stop.exit, stop.output);
    for (long pid : pids) {
      if (pid == killedTaskManager) {
        continue;
      }
      assertFalse(ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false), "process " + pid + " stopped");
    }
  }

  @Test
  void bothDirectionsOnTheClusterWriteTheDirectRunnersBytesUsingBothTaskManagers() throws Exception {
    Path clusterMcore = convert("hf2mcore", hf, work.resolve("cluster-mcore"), LAYOUT, onCluster());
    Checkpoints.assertSameFiles(directMcore, clusterMcore, true);
    assertEquals(2, taskManagersOf(lastJob("ckptbeam-hf2mcore")).size(), "hf2mcore tasks ran on both TaskManagers");

    String reverse = LAYOUT.replace("--target-", "--source-");
    Path directHf = convert("mcore2hf", directMcore, work.resolve("direct-hf"), reverse);
    Path clusterHf = convert("mcore2hf", clusterMcore, work.resolve("cluster-hf"), reverse, onCluster());
    Checkpoints.assertSameFiles(directHf, clusterHf, false);
    assertEquals(2, taskManagersOf(lastJob("ckptbeam-mcore2hf")).size(), "mcore2hf tasks ran on both TaskManagers");
    String report = RoundTripTest.roundTrip(hf, clusterHf, "");
    assertTrue(report.startsWith("OK "), report);
  }

  @Test
  void aWriterThatFailsOnceIsRetriedAndTheRewrittenFileIsIdentical() throws Exception {
    String victim = "iter_0000001/mp_rank_01_001_001/model_optim_rng.pt";
    assertTrue(Files.exists(directMcore.resolve(victim)), victim + " is one of the layout's files");
    Path marker = work.resolve("failed-once");
    List<String> flags = new ArrayList<>(onCluster());
    // The retry comes from the cluster's restart strategy (the script sets one: exponential delay, 10 attempts).
    flags.addAll(List.of("--failOnceAfterWriting=" + victim, "--failOnceMarker=" + marker));
    Path out = convert("hf2mcore", hf, work.resolve("retried-mcore"), LAYOUT, flags);
    assertTrue(Files.exists(marker), "the injected failure happened");
    JsonNode job = lastJob("ckptbeam-hf2mcore");
    String failures = rest("/jobs/" + job.get("jid").asText() + "/exceptions").toString();
    assertTrue(failures.contains("injected failure after writing"), "the job failed once and was restarted: "
        + failures);
    Checkpoints.assertSameFiles(directMcore, out, true);
    try (Stream<Path> s = Files.walk(out)) {
      assertTrue(s.noneMatch(p -> p.toString().endsWith(".ckptbeam-partial")), "no staging file is left");
    }
  }

  /**
   * A TaskManager killed ({@code kill -9}) while the job writes, and a replacement started, as an operator or a
   * resource manager would: with the restart strategy of {@code scripts/local-flink-cluster.sh} (which the README
   * gives) the job restarts until the replacement has registered and finishes; the output is byte-identical and its
   * tracker file was written once, after every rank file.
   */
  @Test
  void aKilledTaskManagerIsSurvived() throws Exception {
    Path out = work.resolve("survived-mcore");
    List<String> flags = new ArrayList<>(onCluster());
    flags.add("--pauseAfterWritingMillis=1500"); // 8 rank files on 2 slots: about 6 s of writing to kill one in
    CompletableFuture<Path> job = CompletableFuture.supplyAsync(() -> convert("hf2mcore", hf, out, LAYOUT, flags));
    Path progress = out.resolve(".ckptbeam-progress");
    Path tracker = out.resolve("latest_checkpointed_iteration.txt");
    long deadline = System.currentTimeMillis() + 120_000;
    while (!(Files.isDirectory(progress) && Files.list(progress).findAny().isPresent())) {
      assertTrue(System.currentTimeMillis() < deadline && !job.isDone(), "the job writes its first file");
      Thread.sleep(50);
    }
    long victim = -1;
    try (Stream<Path> s = Files.list(clusterDir)) {
      for (Path f : s.filter(p -> p.getFileName().toString().matches("tm\\d+\\.pid")).sorted().toList()) {
        long pid = Long.parseLong(Files.readString(f).trim());
        if (ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
          victim = pid;
          break;
        }
      }
    }
    assertTrue(victim > 0, "a live TaskManager to kill");
    assertFalse(Files.exists(tracker), "killed mid-write, before the tracker");
    killedTaskManager = victim;
    Process kill = new ProcessBuilder("kill", "-9", Long.toString(victim)).start();
    assertEquals(0, kill.waitFor());
    // watch the tracker file while the job recovers: it must appear once and never be rewritten
    Set<String> trackerWrites = new TreeSet<>();
    CompletableFuture<Script> replacement = CompletableFuture.supplyAsync(() -> {
      try {
        return script("add-taskmanager");
      } catch (Exception e) {
        throw new IllegalStateException(e);
      }
    });
    while (!job.isDone()) {
      if (Files.exists(tracker)) {
        try {
          trackerWrites.add(Files.readAttributes(tracker, java.nio.file.attribute.BasicFileAttributes.class)
              .fileKey() + "@" + Files.getLastModifiedTime(tracker).toMillis());
        } catch (IOException e) {
          // replaced while read: the next look sees the new one
        }
      }
      Thread.sleep(20);
    }
    job.get();
    Script added = replacement.get(5, TimeUnit.MINUTES);
    assertEquals(0, added.exit, added.output);
    trackerWrites.add(Files.readAttributes(tracker, java.nio.file.attribute.BasicFileAttributes.class).fileKey() + "@"
        + Files.getLastModifiedTime(tracker).toMillis());
    assertEquals(1, trackerWrites.size(), "the tracker was written once: " + trackerWrites);
    Checkpoints.assertSameFiles(directMcore, out, true);
    JsonNode last = lastJob("ckptbeam-hf2mcore");
    String failures = rest("/jobs/" + last.get("jid").asText() + "/exceptions").toString();
    assertTrue(failures.contains("TaskManager") || failures.contains("taskmanager"),
        "the job lost a TaskManager and was restarted: " + failures);
  }

  /**
   * Watch as a detached streaming job: two checkpoints dropped at once are converted concurrently, each byte-identical
   * to the batch run, and their rank files are written by WriteFiles subtasks on both TaskManagers (a checkpoint's
   * files fan out; they are not converted by one worker).
   */
  @Test
  void watchRunsAsAStreamingJobOnTheClusterAndFansEachCheckpointOut() throws Exception {
    Path incoming = Files.createDirectories(work.resolve("watch-in"));
    Path converted = work.resolve("watch-out");
    List<String> args = new ArrayList<>(List.of("watch", "--direction", "hf2mcore", "--input-pattern",
        incoming + "/*", "--save-root", converted.toString(), "--poll-interval", "1", "--detach"));
    args.addAll(List.of(LAYOUT.split(" ")));
    args.addAll(onCluster());
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("submitted"), r.out);
    JsonNode job = null;
    try {
      // both land in one poll: staged next to the watched folder, then moved in together
      WatchTest.copy(hf, work.resolve("staged-1"), 0);
      WatchTest.copy(hf, work.resolve("staged-2"), 0);
      Files.move(work.resolve("staged-1"), incoming.resolve("ck-1"));
      Files.move(work.resolve("staged-2"), incoming.resolve("ck-2"));
      List<Path> statuses = List.of(converted.resolve("ck-1.ckptbeam-status.json"),
          converted.resolve("ck-2.ckptbeam-status.json"));
      long deadline = System.currentTimeMillis() + 180_000;
      while (!statuses.stream().allMatch(Files::exists) && System.currentTimeMillis() < deadline) {
        Thread.sleep(500);
      }
      for (JsonNode j : rest("/jobs/overview").get("jobs")) {
        if (j.get("name").asText().startsWith("ckptbeam-watch") && j.get("state").asText().equals("RUNNING")) {
          job = j;
        }
      }
      assertTrue(job != null, "the watch job runs on the cluster");
      List<JsonNode> records = new ArrayList<>();
      for (Path status : statuses) {
        assertTrue(Files.exists(status), status + ": converted within 3 minutes");
        records.add(JSON.readTree(Files.readString(status)));
        assertEquals("converted", records.get(records.size() - 1).get("state").asText(), Files.readString(status));
      }
      Checkpoints.assertSameFiles(directMcore, converted.resolve("ck-1"), false);
      Checkpoints.assertSameFiles(directMcore, converted.resolve("ck-2"), false);
      Instant lastStart = Instant.parse(records.get(0).get("start").asText());
      Instant firstEnd = Instant.parse(records.get(0).get("end").asText());
      for (JsonNode rec : records) {
        Instant start = Instant.parse(rec.get("start").asText());
        Instant end = Instant.parse(rec.get("end").asText());
        lastStart = start.isAfter(lastStart) ? start : lastStart;
        firstEnd = end.isBefore(firstEnd) ? end : firstEnd;
      }
      assertTrue(lastStart.isBefore(firstEnd), "the two conversions overlap in time: " + records);
      // the JobManager fetches task metrics every few seconds: wait for them
      Set<String> writers = taskManagersThatProcessed(job, "WriteFiles");
      for (long until = System.currentTimeMillis() + 30_000; writers.size() < 2 && System.currentTimeMillis() < until;
          Thread.sleep(1000)) {
        writers = taskManagersThatProcessed(job, "WriteFiles");
      }
      assertEquals(2, writers.size(), "WriteFiles subtasks on both TaskManagers wrote rank files: " + writers
          + "\n" + vertexMetrics(job, "WriteFiles"));
    } finally {
      for (JsonNode j : rest("/jobs/overview").get("jobs")) {
        if (j.get("name").asText().startsWith("ckptbeam-watch") && j.get("state").asText().equals("RUNNING")) {
          HttpClient.newHttpClient().send(HttpRequest.newBuilder(URI.create("http://localhost:" + restPort + "/jobs/"
              + j.get("jid").asText() + "?mode=cancel")).method("PATCH", HttpRequest.BodyPublishers.noBody())
              .build(), HttpResponse.BodyHandlers.ofString());
        }
      }
    }
  }

  private static String vertexMetrics(JsonNode job, String step) throws Exception {
    StringBuilder out = new StringBuilder();
    String jid = job.get("jid").asText();
    for (JsonNode vertex : rest("/jobs/" + jid).get("vertices")) {
      if (vertex.get("name").asText().contains(step)) {
        out.append(vertex.get("name").asText()).append(": ")
            .append(rest("/jobs/" + jid + "/vertices/" + vertex.get("id").asText() + "/taskmanagers")).append('\n');
      }
    }
    return out.toString();
  }

  /** The TaskManagers whose subtasks of the vertex named like {@code step} received at least one record. */
  private static Set<String> taskManagersThatProcessed(JsonNode job, String step) throws Exception {
    String jid = job.get("jid").asText();
    Set<String> tms = new TreeSet<>();
    StringBuilder seen = new StringBuilder();
    for (JsonNode vertex : rest("/jobs/" + jid).get("vertices")) {
      if (!vertex.get("name").asText().contains(step)) {
        continue;
      }
      for (JsonNode tm : rest("/jobs/" + jid + "/vertices/" + vertex.get("id").asText() + "/taskmanagers")
          .get("taskmanagers")) {
        seen.append(tm.get("taskmanager-id").asText()).append(' ').append(tm.get("metrics")).append('\n');
        if (tm.get("metrics").get("read-records").asLong() > 0) {
          tms.add(tm.get("taskmanager-id").asText());
        }
      }
    }
    assertTrue(seen.length() > 0, "the job has a vertex with step " + step);
    return tms;
  }

  private List<String> onCluster() throws IOException {
    Path jar;
    try (Stream<Path> s = Files.list(Torch.repo().resolve("pipelines/target"))) {
      jar = s.filter(p -> p.getFileName().toString().endsWith("-flinkjob.jar")).findFirst()
          .orElseThrow(() -> new IOException("no -flinkjob.jar in pipelines/target: run mvn package first"));
    }
    return List.of("--runner=FlinkRunner", "--flinkMaster=localhost:" + restPort, "--parallelism=2",
        "--filesToStage=" + jar);
  }

  private static Path convert(String command, Path in, Path out, String layout) {
    return convert(command, in, out, layout, List.of());
  }

  private static Path convert(String command, Path in, Path out, String layout, List<String> beamFlags) {
    List<String> args = new ArrayList<>(List.of(command, "--load-dir", in.toString(), "--save-dir", out.toString()));
    args.addAll(List.of(layout.split(" ")));
    args.addAll(beamFlags);
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    return out;
  }



  /** The newest job whose name starts with {@code prefix} (the CLI names jobs ckptbeam-COMMAND-MILLIS). */
  private static JsonNode lastJob(String prefix) throws Exception {
    JsonNode best = null;
    for (JsonNode job : rest("/jobs/overview").get("jobs")) {
      if (job.get("name").asText().startsWith(prefix)
          && (best == null || job.get("start-time").asLong() > best.get("start-time").asLong())) {
        best = job;
      }
    }
    assertTrue(best != null, "the cluster ran a " + prefix + " job");
    assertEquals("FINISHED", best.get("state").asText());
    return best;
  }

  /** The TaskManagers (by endpoint) that ran at least one subtask of the job. */
  private static Set<String> taskManagersOf(JsonNode job) throws Exception {
    String jid = job.get("jid").asText();
    Set<String> tms = new TreeSet<>();
    for (JsonNode vertex : rest("/jobs/" + jid).get("vertices")) {
      for (JsonNode tm : rest("/jobs/" + jid + "/vertices/" + vertex.get("id").asText() + "/taskmanagers")
          .get("taskmanagers")) {
        tms.add(tm.get("taskmanager-id").asText());
      }
    }
    return tms;
  }

  private static JsonNode overview() throws Exception {
    return rest("/overview");
  }

  private static JsonNode rest(String path) throws Exception {
    HttpResponse<String> r = HttpClient.newHttpClient().send(
        HttpRequest.newBuilder(URI.create("http://localhost:" + restPort + path)).build(),
        HttpResponse.BodyHandlers.ofString());
    assertEquals(200, r.statusCode(), path + ": " + r.body());
    return JSON.readTree(r.body());
  }

  private static int freePort() throws IOException {
    try (ServerSocket s = new ServerSocket(0)) {
      return s.getLocalPort();
    }
  }

  private static final class Script {
    final int exit;
    final String output;

    Script(int exit, String output) {
      this.exit = exit;
      this.output = output;
    }
  }

  private static Script script(String verb) throws Exception {
    ProcessBuilder pb = new ProcessBuilder(Torch.repo().resolve("scripts/local-flink-cluster.sh").toString(), verb)
        .redirectErrorStream(true);
    pb.environment().put("FLINK_CLUSTER_DIR", clusterDir.toString());
    pb.environment().put("FLINK_REST_PORT", String.valueOf(restPort));
    pb.environment().put("FLINK_RPC_PORT", String.valueOf(freePort()));
    pb.environment().put("FLINK_BLOB_PORT", String.valueOf(freePort()));
    Process p = pb.start();
    byte[] out = p.getInputStream().readAllBytes();
    assertTrue(p.waitFor(5, TimeUnit.MINUTES), "local-flink-cluster.sh " + verb + " finished");
    return new Script(p.exitValue(), new String(out, StandardCharsets.UTF_8));
  }
}
