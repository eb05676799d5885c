package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.pipelines.WatchCommand;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.google.api.client.util.Clock;
import com.google.cloud.storage.Blob;
import com.google.cloud.storage.Storage;
import com.google.protobuf.ByteString;
import com.google.pubsub.v1.PubsubMessage;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.stream.Stream;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubClient;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubIO;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubReads;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubTestClient;
import org.joda.time.Duration;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code watch} on gs://, against the Cloud Storage emulator: polling a prefix, and Cloud Storage notifications read
 * from Pub/Sub (Beam's in-memory Pub/Sub client: no Pub/Sub emulator can run offline) with duplicated and
 * out-of-order events.
 */
class GcsWatchTest {
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final String BUCKET = "ckptbeam-watch";
  private static final String SUBSCRIPTION = "projects/ckptbeam-test/subscriptions/checkpoint-events";
  private static final long NOW = 1_790_000_000_000L;

  @TempDir static Path work;
  static GcsEmulator gcs;
  static Path hf;
  static Path expected;

  @BeforeAll
  static void start() throws Exception {
    gcs = GcsEmulator.start(work.resolve("emulator"));
    hf = Checkpoints.tinyModel(work.resolve("hf"));
    expected = work.resolve("expected");
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", expected.toString());
    assertEquals(0, r.exit, r.toString());
  }

  @AfterAll
  static void stop() throws Exception {
    gcs.close();
  }

  @Test
  void aCheckpointUploadedUnderAWatchedPrefixIsConverted() throws Exception {
    gcs.upload(hf, BUCKET, "polled/incoming/run-1");
    List<String> args = new ArrayList<>(List.of("watch", "--direction", "hf2mcore", "--input-pattern",
        "gs://" + BUCKET + "/polled/incoming/*/", "--save-root", "gs://" + BUCKET + "/polled/converted/",
        "--poll-interval", "1", "--stop-after-idle", "4"));
    args.addAll(gcs.beamFlags());
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("1 checkpoint(s) seen, 1 converted"), r.out);
    Path got = work.resolve("polled");
    gcs.download(BUCKET, "polled/converted/run-1", got);
    Checkpoints.assertSameFiles(expected, got, false);
    JsonNode status = JSON.readTree(gcs.storage.get(BUCKET, "polled/converted/run-1.ckptbeam-status.json")
        .getContent());
    assertEquals("converted", status.get("state").asText(), status.toString());
  }

  @Test
  void duplicatedAndReorderedNotificationsConvertEachCompleteCheckpointOnce() throws Exception {
    gcs.upload(hf, BUCKET, "events/incoming/complete");
    // the second checkpoint lacks a shard: its events must not trigger a conversion
    gcs.upload(hf, BUCKET, "events/incoming/partial");
    gcs.storage.delete(BUCKET, "events/incoming/partial/model-00002-of-000003.safetensors");

    List<PubsubClient.IncomingMessage> events = new ArrayList<>();
    int id = 0;
    for (String checkpoint : List.of("complete", "partial")) {
      for (Blob b : gcs.storage.list(BUCKET, Storage.BlobListOption.prefix(
          "events/incoming/" + checkpoint + "/")).iterateAll()) {
        for (int copy = 0; copy < 2; copy++) { // at-least-once delivery: every event twice
          events.add(event(b.getName(), id++));
        }
      }
    }
    events.add(event("events/elsewhere/readme.txt", id++)); // outside the pattern: ignored
    Collections.shuffle(events, new Random(7));

    List<String> args = new ArrayList<>(List.of("--direction", "hf2mcore", "--input-pattern",
        "gs://" + BUCKET + "/events/incoming/*/", "--save-root", "gs://" + BUCKET + "/events/converted/",
        "--notifications", SUBSCRIPTION));
    args.addAll(gcs.beamFlags());
    // Flink [local]: the DirectRunner re-creates unbounded readers at random to test checkpointing, and the in-memory
    // client rejects the stale acknowledgements that follows (a property of the fake, not of Pub/Sub).
    // Flink acknowledges Pub/Sub messages when a checkpoint completes, so checkpointing is on.
    args.addAll(List.of("--runner=FlinkRunner", "--flinkMaster=[local]", "--parallelism=1",
        "--checkpointingInterval=500"));
    try (PubsubTestClient.PubsubTestClientFactory factory = PubsubTestClient.createFactoryForPull(
        new FrozenClock(), PubsubClient.subscriptionPathFromPath(SUBSCRIPTION), 60, events)) {
      PubsubIO.Read<String> read = PubsubReads.withClock(
          PubsubIO.readStrings().fromSubscription(SUBSCRIPTION).withClientFactory(factory), new FrozenClock());
      Pipeline p = WatchCommand.pipeline(args.toArray(new String[0]), read);
      PipelineResult result = p.run();
      String tracker = "events/converted/complete/latest_checkpointed_iteration.txt";
      long deadline = System.currentTimeMillis() + 120_000;
      while (gcs.storage.get(BUCKET, tracker) == null && System.currentTimeMillis() < deadline) {
        result.waitUntilFinish(Duration.millis(500));
      }
      // time for any duplicate to do harm, and for checkpoints to acknowledge every message
      result.waitUntilFinish(Duration.standardSeconds(6));
      String summary = WatchCommand.summary(result);
      result.cancel();
      assertTrue(summary.startsWith("1 checkpoint(s) seen, 1 converted, 0 already converted, 0 failed"), summary);
    }
    Path got = work.resolve("events");
    gcs.download(BUCKET, "events/converted/complete", got);
    Checkpoints.assertSameFiles(expected, got, false);
    assertNull(gcs.storage.get(BUCKET, "events/converted/partial.ckptbeam-status.json"),
        "the incomplete checkpoint was not converted");
    try (Stream<Path> s = Files.walk(got)) {
      assertTrue(s.anyMatch(f -> f.toString().endsWith("model_optim_rng.pt")));
    }
  }

  /** An OBJECT_FINALIZE notification: the object's JSON resource as payload, as Cloud Storage sends it. */
  private static PubsubClient.IncomingMessage event(String object, int id) throws Exception {
    String payload = JSON.writeValueAsString(Map.of("kind", "storage#object", "bucket", BUCKET,
        "name", object));
    PubsubMessage m = PubsubMessage.newBuilder().setData(ByteString.copyFromUtf8(payload))
        .putAttributes("eventType", "OBJECT_FINALIZE").putAttributes("bucketId", BUCKET)
        .putAttributes("objectId", object).build();
    return PubsubClient.IncomingMessage.of(m, NOW, NOW, "ack-" + id, "record-" + id);
  }

  /** The fake serves pulls only at the time its messages were queued for. */
  static final class FrozenClock implements Clock, Serializable {
    private static final long serialVersionUID = 1L;

    @Override
    public long currentTimeMillis() {
      return NOW;
    }
  }
}
