package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.time.Instant;
import org.apache.beam.sdk.coders.VarLongCoder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.TimeDomain;
import org.apache.beam.sdk.state.Timer;
import org.apache.beam.sdk.state.TimerSpec;
import org.apache.beam.sdk.state.TimerSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;

/**
 * Lets each checkpoint folder through once, when it is complete and not converted yet. Keyed by folder, so
 * duplicated or reordered events (Pub/Sub delivers at least once, in any order) meet the same state: the first event
 * that finds the folder complete claims it; later ones are dropped. An incomplete folder is not claimed, so a later
 * event or poll tries again. A folder whose output already has its marker (converted before a restart, or by this
 * run) is dropped without converting: the marker, not the state, remembers finished conversions.
 *
 * <p>The state is bounded: a claim is held while its conversion runs and checked every {@link #RECHECK}; once the
 * output has its marker the claim is cleared (later events find the marker). A failed conversion keeps its claim
 * (it is tried again only after a restart, as its status record says), so the state holds the running and the
 * failed conversions only.
 */
final class ClaimCheckpointFn extends DoFn<KV<String, String>, String> {
  private static final long serialVersionUID = 1L;
  /** How often a claim looks for its conversion's end. */
  static final Duration RECHECK = Duration.standardMinutes(1);
  private static final ObjectMapper JSON = new ObjectMapper();

  private final CheckpointReadiness readiness;
  private final CheckpointFolders folders;
  private final String outputMarker;
  private final Counter seen = Metrics.counter(RecordStatusFn.NAMESPACE, "checkpoints_seen");
  private final Counter alreadyConverted = Metrics.counter(RecordStatusFn.NAMESPACE, "checkpoints_already_converted");

  /** When the folder was claimed (epoch milliseconds); absent when not claimed. */
  @StateId("claimedAt")
  private final StateSpec<ValueState<Long>> claimedSpec = StateSpecs.value(VarLongCoder.of());

  @TimerId("recheck")
  private final TimerSpec recheckSpec = TimerSpecs.timer(TimeDomain.PROCESSING_TIME);

  ClaimCheckpointFn(CheckpointReadiness readiness, CheckpointFolders folders, String outputMarker) {
    this.readiness = readiness;
    this.folders = folders;
    this.outputMarker = outputMarker;
  }

  /**
   * Keys each folder by itself, for the claim. Defined here, not in the command class, because a lambda is
   * deserialised through the class that wrote it and workers must not need the driver's classes (Pub/Sub).
   */
  static WithKeys<String, String> keyByFolder() {
    return WithKeys.<String, String>of(folder -> folder).withKeyType(TypeDescriptors.strings());
  }

  @ProcessElement
  public void process(@Element KV<String, String> e, @StateId("claimedAt") ValueState<Long> claimedAt,
      @TimerId("recheck") Timer recheck, OutputReceiver<String> out) throws IOException {
    if (claimedAt.read() != null) {
      return;
    }
    String folder = e.getKey();
    if (converted(folder)) {
      alreadyConverted.inc();
      return;
    }
    if (readiness.missing(folder) != null) {
      return; // still being written: the next event or poll looks again
    }
    claimedAt.write(System.currentTimeMillis());
    recheck.offset(RECHECK).setRelative();
    seen.inc();
    out.output(folder);
  }

  /** The claim ends with its conversion: cleared once the output has its marker, kept (unchecked) if it failed. */
  @OnTimer("recheck")
  public void onRecheck(@Key String folder, @StateId("claimedAt") ValueState<Long> claimedAt,
      @TimerId("recheck") Timer recheck) {
    Long since = claimedAt.read();
    if (since == null) {
      return;
    }
    try {
      if (converted(folder)) {
        claimedAt.clear();
        return;
      }
      if (failedSince(folder, since)) {
        return;
      }
    } catch (IOException | RuntimeException e) {
      // a store that cannot answer now, or a status record being rewritten: ask again later, never fail the timer
      // (a streaming runner would retry a failing one forever)
    }
    recheck.offset(RECHECK).setRelative();
  }

  private boolean converted(String folder) throws IOException {
    return CheckpointFiles.exists(CheckpointFiles.resolve(folders.outputOf(folder), outputMarker));
  }

  /** Whether the folder's status record says that a conversion started after {@code since} failed. */
  private boolean failedSince(String folder, long since) throws IOException {
    String status = folders.statusOf(folder);
    if (!CheckpointFiles.exists(status)) {
      return false;
    }
    JsonNode record = JSON.readTree(CheckpointFiles.readSmallFile(status, 64L << 20));
    return record != null && "failed".equals(record.path("state").asText())
        && Instant.parse(record.path("start").asText("1970-01-01T00:00:00Z")).toEpochMilli() >= since;
  }
}
