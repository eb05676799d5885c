package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.METRICS_NAMESPACE;
import static ckptbeam.transforms.beam.CheckpointConversion.message;

import ckptbeam.transforms.ProgressRecord;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/** Writes one target file (or, resuming, keeps it when an earlier attempt finished it intact). */
final class WriteFilesFn extends DoFn<TargetWork, KV<String, CommitEvent>> {
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
  private final Counter files = Metrics.counter(METRICS_NAMESPACE, "files_written");
  private final Counter bytes = Metrics.counter(METRICS_NAMESPACE, "bytes_written");
  private final Counter kept = Metrics.counter(METRICS_NAMESPACE, "files_kept");
  private final Counter failures = Metrics.counter(METRICS_NAMESPACE, "files_failed");
  private transient DerivedPlans derived;

  @Setup
  public void setUp() {
    derived = new DerivedPlans();
  }

  @ProcessElement
  public void process(@Element TargetWork w, OutputReceiver<KV<String, CommitEvent>> out, PipelineOptions options) {
    try {
      WrittenFile written = w.resume() ? ProgressRecord.reusable(w.saveDir(), w.fingerprint, w.target) : null;
      if (written != null) {
        kept.inc();
      } else {
        written = derived.of(w.request, w.fingerprint).plan.write(w.target, w.sources, w.saveDir(), options);
        ProgressRecord.write(w.saveDir(), w.fingerprint, written);
        files.inc();
        bytes.inc(written.bytes);
        FaultInjectionOptions.afterWriting(options, w.target);
        FaultInjectionOptions.pauseAfterWriting(options);
      }
      out.output(KV.of(w.conversion, CommitEvent.written(written)));
    } catch (FaultInjectionOptions.InjectedFailure e) {
      throw e; // stands for a crashed worker: the runner retries
    } catch (Exception e) {
      failures.inc();
      LOG.warn("{}: writing failed: {}", w, message(e));
      LOG.debug("writing failed", e);
      out.output(KV.of(w.conversion, CommitEvent.writeFailed(w.target, message(e))));
    }
  }
}
