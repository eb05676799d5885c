package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import java.io.IOException;
import org.apache.beam.sdk.coders.BooleanCoder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.TypeDescriptors;

/**
 * Lets each checkpoint folder through once, when it is complete and not converted yet. Keyed by folder, so
 * duplicated or reordered events (Pub/Sub delivers at least once, in any order) meet the same state: the first event
 * that finds the folder complete claims it; later ones are dropped. An incomplete folder is not claimed, so a later
 * event or poll tries again. A folder whose output already has its marker (converted before a restart) is claimed
 * without converting.
 */
final class ClaimCheckpointFn extends DoFn<KV<String, String>, String> {
  private static final long serialVersionUID = 1L;

  private final CheckpointReadiness readiness;
  private final CheckpointFolders folders;
  private final String outputMarker;
  private final Counter seen = Metrics.counter(RecordStatusFn.NAMESPACE, "checkpoints_seen");
  private final Counter alreadyConverted = Metrics.counter(RecordStatusFn.NAMESPACE, "checkpoints_already_converted");

  @StateId("claimed")
  private final StateSpec<ValueState<Boolean>> claimedSpec = StateSpecs.value(BooleanCoder.of());

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
  public void process(@Element KV<String, String> e, @StateId("claimed") ValueState<Boolean> claimed,
      OutputReceiver<String> out) throws IOException {
    if (Boolean.TRUE.equals(claimed.read())) {
      return;
    }
    String folder = e.getKey();
    if (CheckpointFiles.exists(CheckpointFiles.resolve(folders.outputOf(folder), outputMarker))) {
      claimed.write(true);
      alreadyConverted.inc();
      return;
    }
    if (readiness.missing(folder) != null) {
      return; // still being written: the next event or poll looks again
    }
    claimed.write(true);
    seen.inc();
    out.output(folder);
  }
}
