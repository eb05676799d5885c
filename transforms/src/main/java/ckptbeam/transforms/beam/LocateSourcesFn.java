package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.METRICS_NAMESPACE;
import static ckptbeam.transforms.beam.CheckpointConversion.message;

import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;

/** Reads one input file's header or pickle: what it holds, keyed by conversion for the assembler. */
final class LocateSourcesFn extends DoFn<SourceWork, KV<String, SourceWork>> {
  private final Counter read = Metrics.counter(METRICS_NAMESPACE, "source_files_read");
  private transient DerivedPlans derived;

  @Setup
  public void setUp() {
    derived = new DerivedPlans();
  }

  @ProcessElement
  public void process(@Element SourceWork w, OutputReceiver<KV<String, SourceWork>> out) {
    SourceWork result;
    try {
      result = w.located(derived.of(w.request, w.fingerprint).sources.locate(w.file));
      read.inc();
    } catch (Exception e) {
      result = w.failed(message(e));
    }
    out.output(KV.of(w.conversion, result));
  }
}
