package ckptbeam.transforms.beam;

import static ckptbeam.transforms.beam.CheckpointConversion.METRICS_NAMESPACE;
import static ckptbeam.transforms.beam.CheckpointConversion.message;

import ckptbeam.transforms.ConversionRequest;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.state.BagState;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.values.KV;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Per conversion: remembers the plan and every file as it arrives (in any order); when all expected files are
 * there, commits (manifest, then marker) and emits the result. A failed file fails the conversion: no marker.
 */
final class CommitFn extends DoFn<KV<String, CommitEvent>, ConversionResult> {
  private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
  private final Counter converted = Metrics.counter(METRICS_NAMESPACE, "conversions_converted");
  private final Counter already = Metrics.counter(METRICS_NAMESPACE, "conversions_already_converted");
  private final Counter failed = Metrics.counter(METRICS_NAMESPACE, "conversions_failed");
  private transient DerivedPlans derived;

  @Setup
  public void setUp() {
    derived = new DerivedPlans();
  }

  @StateId("plan")
  private final StateSpec<ValueState<CommitEvent>> planSpec =
      StateSpecs.value(ConversionCoders.CommitEventCoder.INSTANCE);

  @StateId("arrived")
  private final StateSpec<BagState<CommitEvent>> arrivedSpec =
      StateSpecs.bag(ConversionCoders.CommitEventCoder.INSTANCE);

  @StateId("count")
  private final StateSpec<ValueState<Integer>> countSpec = StateSpecs.value(VarIntCoder.of());

  @ProcessElement
  public void process(@Element KV<String, CommitEvent> e, @StateId("plan") ValueState<CommitEvent> plan,
      @StateId("arrived") BagState<CommitEvent> arrived, @StateId("count") ValueState<Integer> count,
      OutputReceiver<ConversionResult> out) {
    CommitEvent event = e.getValue();
    switch (event.kind) {
      case PLAN_FAILED:
        failed.inc();
        out.output(ConversionResult.failed(event.request, event.message, List.of(), event.startMillis));
        return;
      case ALREADY_CONVERTED:
        try {
          out.output(ConversionResult.alreadyConverted(event.request, event.startMillis));
          already.inc();
        } catch (Exception x) {
          failed.inc();
          out.output(ConversionResult.failed(event.request, message(x), List.of(), event.startMillis));
        }
        return;
      case PLANNED:
        plan.write(event);
        break;
      default:
        arrived.add(event);
        Integer n = count.read();
        count.write(n == null ? 1 : n + 1);
    }
    CommitEvent planned = plan.read();
    Integer n = count.read();
    if (planned == null || n == null || n < planned.expectedFiles) {
      return;
    }
    List<WrittenFile> files = new ArrayList<>();
    List<CommitEvent> failures = new ArrayList<>();
    for (CommitEvent a : arrived.read()) {
      if (a.kind == CommitEvent.Kind.WRITTEN) {
        files.add(a.file);
      } else {
        failures.add(a);
      }
    }
    plan.clear();
    arrived.clear();
    count.clear();
    ConversionRequest r = planned.request;
    if (!failures.isEmpty()) {
      failures.sort(Comparator.comparing((CommitEvent f) -> f.target));
      failed.inc();
      out.output(ConversionResult.failed(r, failures.get(0).target + ": " + failures.get(0).message
          + (failures.size() > 1 ? " (and " + (failures.size() - 1) + " more file(s) failed)" : "")
          + "; no completion marker written", planned.notes, planned.startMillis));
      return;
    }
    try {
      derived.of(r, planned.fingerprint).commit.commit(files, planned.notes);
      converted.inc();
      out.output(ConversionResult.converted(r, files, planned.notes, planned.startMillis));
    } catch (Exception x) {
      LOG.warn("{}: commit failed: {}", r, message(x));
      LOG.debug("commit failed", x);
      failed.inc();
      out.output(ConversionResult.failed(r, message(x), planned.notes, planned.startMillis));
    }
  }
}
