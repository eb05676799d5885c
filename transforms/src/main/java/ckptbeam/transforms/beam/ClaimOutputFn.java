package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.CLAIMED;
import static ckptbeam.transforms.beam.CheckpointConversion.CONFLICTS;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import java.io.IOException;
import java.util.List;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.TimeDomain;
import org.apache.beam.sdk.state.Timer;
import org.apache.beam.sdk.state.TimerSpec;
import org.apache.beam.sdk.state.TimerSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;
import org.joda.time.Duration;

/**
 * One conversion per save dir: the first request claims it; the same conversion later is dropped (a duplicated
 * event, a repeated submission, the same flags spelled otherwise); a different one fails, since two conversions must
 * never write one folder.
 *
 * <p>In a streaming pipeline the claim is bounded: it ends after {@link #CLAIM_TTL}, and a request that resumes
 * (what watch sends) is checked every {@link #RECHECK} and released as soon as the save dir has its completion
 * marker: a later duplicate, resuming too, finds the output complete and is reported as already converted. A
 * request that overwrites or refuses keeps its claim for the TTL (a late duplicate would redo, or fail on, a finished
 * output). A batch pipeline's state ends with the pipeline, so no timer is set there.
 */
final class ClaimOutputFn extends DoFn<KV<String, ConversionRequest>, ConversionRequest> {
  static final Duration RECHECK = Duration.standardMinutes(1);
  static final Duration CLAIM_TTL = Duration.standardHours(24);

  @StateId("claimedBy")
  private final StateSpec<ValueState<ConversionRequest>> claimedSpec =
      StateSpecs.value(ConversionCoders.RequestCoder.INSTANCE);

  @TimerId("recheck")
  private final TimerSpec recheckSpec = TimerSpecs.timer(TimeDomain.PROCESSING_TIME);

  @TimerId("expire")
  private final TimerSpec expireSpec = TimerSpecs.timer(TimeDomain.PROCESSING_TIME);

  @ProcessElement
  public void process(@Element KV<String, ConversionRequest> e,
      @StateId("claimedBy") ValueState<ConversionRequest> claimedBy, @TimerId("recheck") Timer recheck,
      @TimerId("expire") Timer expire, MultiOutputReceiver out, PipelineOptions options) {
    ConversionRequest first = claimedBy.read();
    if (first == null) {
      claimedBy.write(e.getValue());
      out.get(CLAIMED).output(e.getValue());
      if (options.as(StreamingOptions.class).isStreaming()) {
        // Only a request that resumes meets a marker it did not write and takes it as "complete, this conversion"
        // (already converted); one that overwrites or refuses would redo or fail on a finished output, so it keeps its
        // claim until the TTL.
        if (e.getValue().existingOutput() == ConversionRequest.ExistingOutput.RESUME) {
          recheck.offset(RECHECK).setRelative();
        }
        expire.offset(CLAIM_TTL).setRelative();
      }
    } else if (!first.equals(e.getValue()) && !sameConversion(first, e.getValue())) {
      long now = System.currentTimeMillis();
      out.get(CONFLICTS).output(ConversionResult.failed(e.getValue(), "--save-dir " + e.getKey()
          + " is already the output of another conversion (" + first + ") in this pipeline", List.of(), now));
    }
  }

  @OnTimer("recheck")
  public void onRecheck(@StateId("claimedBy") ValueState<ConversionRequest> claimedBy,
      @TimerId("recheck") Timer recheck, @TimerId("expire") Timer expire) {
    ConversionRequest r = claimedBy.read();
    if (r == null) {
      return;
    }
    if (complete(r)) {
      claimedBy.clear();
      expire.clear();
    } else {
      recheck.offset(RECHECK).setRelative();
    }
  }

  @OnTimer("expire")
  public void onExpire(@StateId("claimedBy") ValueState<ConversionRequest> claimedBy,
      @TimerId("recheck") Timer recheck) {
    claimedBy.clear();
    recheck.clear();
  }

  /** Whether the save dir has its completion marker; a store that cannot answer now is asked again later. */
  private static boolean complete(ConversionRequest r) {
    try {
      return CheckpointFiles.exists(CheckpointFiles.resolve(r.saveDir(), ConversionPlanner.markerName(r.kind())));
    } catch (IOException x) {
      return false;
    }
  }

  /**
   * Whether two requests that differ as given (a default spelled out, {@code --overwrite} beside {@code --resume})
   * are the same conversion: equal fingerprints, which resolve the layouts against the model (derived from the small
   * files alone: no shard header is read for it). Asked only when two requests meet at one save dir; a request that
   * cannot be derived is a different one.
   */
  static boolean sameConversion(ConversionRequest a, ConversionRequest b) {
    try {
      return a.kind() == b.kind()
          && ConversionPlanner.derive(a).fingerprint.equals(ConversionPlanner.derive(b).fingerprint);
    } catch (Exception x) {
      return false;
    }
  }
}
