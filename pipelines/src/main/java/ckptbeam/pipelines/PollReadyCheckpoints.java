package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.Contextful;
import org.apache.beam.sdk.transforms.Watch;
import org.joda.time.Instant;

/**
 * One poll of the watched pattern: the folders that hold the marker file, are complete and have no converted output
 * yet. Beam's {@link Watch} emits each folder once over all polls, so a folder must only be reported once it is
 * complete; an incomplete one is simply reported by a later poll.
 */
final class PollReadyCheckpoints extends Watch.Growth.PollFn<String, String> {
  private static final long serialVersionUID = 1L;

  private final CheckpointReadiness readiness;
  private final CheckpointFolders folders;
  private final String outputMarker;
  private final long intervalMillis;
  private transient long lastPollNanos;
  private final Counter polls = Metrics.counter(RecordStatusFn.NAMESPACE, "polls");

  PollReadyCheckpoints(CheckpointReadiness readiness, CheckpointFolders folders, String outputMarker,
      long intervalMillis) {
    this.readiness = readiness;
    this.folders = folders;
    this.outputMarker = outputMarker;
    this.intervalMillis = intervalMillis;
  }

  @Override
  public Watch.Growth.PollResult<String> apply(String pattern, Contextful.Fn.Context c) throws Exception {
    // Flink's streaming runner resumes Watch at once instead of after the poll interval: without this a poll is a
    // busy loop of listings (on gs://, billed LIST calls).
    long sinceLast = (System.nanoTime() - lastPollNanos) / 1_000_000;
    if (lastPollNanos != 0 && sinceLast < intervalMillis) {
      Thread.sleep(intervalMillis - sinceLast);
    }
    lastPollNanos = System.nanoTime();
    polls.inc();
    List<String> ready = new ArrayList<>();
    for (String folder : folders.withMarker(readiness.markerFile())) {
      boolean converted = CheckpointFiles.exists(CheckpointFiles.resolve(folders.outputOf(folder), outputMarker));
      if (converted || readiness.missing(folder) == null) {
        ready.add(folder); // converted ones too: the claim step counts and skips them
      }
    }
    return Watch.Growth.PollResult.incomplete(Instant.now(), ready);
  }
}
