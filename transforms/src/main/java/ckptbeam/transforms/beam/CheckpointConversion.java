package ckptbeam.transforms.beam;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.InputSources;
import ckptbeam.transforms.LocatedFile;
import ckptbeam.transforms.SourceFile;
import ckptbeam.transforms.ProgressRecord;
import java.io.IOException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.coders.VarIntCoder;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.state.BagState;
import org.apache.beam.sdk.state.StateSpec;
import org.apache.beam.sdk.state.StateSpecs;
import org.apache.beam.sdk.state.TimeDomain;
import org.apache.beam.sdk.state.Timer;
import org.apache.beam.sdk.state.TimerSpec;
import org.apache.beam.sdk.state.TimerSpecs;
import org.apache.beam.sdk.state.ValueState;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Reshuffle;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;
import org.apache.beam.sdk.values.TupleTagList;
import org.slf4j.Logger;
import org.joda.time.Duration;
import org.slf4j.LoggerFactory;

/**
 * Converts checkpoints: {@link ConversionRequest}s in, one {@link ConversionResult} per distinct request out, split
 * into succeeded and failed ({@link ConversionResults}). The one conversion path of ckptbeam, for batch and streaming
 * pipelines alike:
 *
 * <pre>{@code
 * ConversionResults results = pipeline
 *     .apply(Create.of(ConversionRequest.hf2mcore(hfDir, mcoreDir, layout)))
 *     .apply(CheckpointConversion.convert());
 * }</pre>
 *
 * <p>Steps: <b>ClaimOutput</b> lets one request per save dir through (duplicates are dropped; a different request
 * for a save dir already claimed fails); <b>Plan</b> reads each request's small files (config, index, tracker),
 * validates, and emits one element per input file to read; <b>FanOutSources</b> ({@link Reshuffle}) spreads them over
 * the workers; <b>LocateSources</b> reads each shard header or rank-file pickle, once; <b>AssembleSources</b>, keyed
 * by conversion, waits for every input file, makes the checks that need all of them and emits one element per
 * target file with where its sources are; <b>FanOut</b> spreads the target files over all workers;
 * <b>WriteFiles</b> streams each target's bytes from its sources into its file; <b>Commit</b>, keyed by conversion,
 * waits until every file of the conversion has arrived, then writes the manifest and the completion marker. Only
 * descriptions travel between steps, never tensor bytes. A failure while planning, reading or writing gives a
 * {@code FAILED} result and no marker; it does not fail the pipeline.
 */
public final class CheckpointConversion extends PTransform<PCollection<ConversionRequest>, ConversionResults> {
  /** Beam metrics of conversions (files, bytes, results), visible in the runner's UI. */
  public static final String METRICS_NAMESPACE = "ckptbeam";

  private static final TupleTag<SourceWork> SOURCES = new TupleTag<>() {};
  private static final TupleTag<TargetWork> TARGETS = new TupleTag<>() {};
  private static final TupleTag<KV<String, CommitEvent>> EVENTS = new TupleTag<>() {};
  static final TupleTag<ConversionRequest> CLAIMED = new TupleTag<>() {};
  static final TupleTag<ConversionResult> CONFLICTS = new TupleTag<>() {};

  private CheckpointConversion() {}

  /** The conversion transform. */
  public static CheckpointConversion convert() {
    return new CheckpointConversion();
  }

  /**
   * The coder of requests. It is registered as the default for {@link ConversionRequest}, so
   * {@code Create.of(request)} needs no {@code withCoder}.
   */
  public static Coder<ConversionRequest> requestCoder() {
    return ConversionCoders.RequestCoder.INSTANCE;
  }

  @Override
  public void populateDisplayData(DisplayData.Builder builder) {
    super.populateDisplayData(builder);
    builder.add(DisplayData.item("metricsNamespace", METRICS_NAMESPACE).withLabel("Metrics namespace"))
        .add(DisplayData.item("steps", "ClaimOutput, Plan, FanOutSources, LocateSources, AssembleSources, FanOut, "
            + "WriteFiles, Commit").withLabel("Steps"))
        .add(DisplayData.item("version", ConversionPlanner.VERSION).withLabel("ckptbeam version"));
  }

  @Override
  public ConversionResults expand(PCollection<ConversionRequest> requests) {
    KvCoder<String, CommitEvent> eventCoder = KvCoder.of(StringUtf8Coder.of(), ConversionCoders.CommitEventCoder.INSTANCE);
    PCollectionTuple claimed = requests
        .apply("KeyBySaveDir", ParDo.of(new KeyBySaveDirFn()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), requestCoder()))
        .apply("ClaimOutput", ParDo.of(new ClaimFn()).withOutputTags(CLAIMED, TupleTagList.of(CONFLICTS)));
    claimed.get(CLAIMED).setCoder(requestCoder());
    claimed.get(CONFLICTS).setCoder(ConversionResult.coder());
    PCollectionTuple planned = claimed.get(CLAIMED)
        .apply("Plan", ParDo.of(new PlanFn()).withOutputTags(SOURCES, TupleTagList.of(EVENTS)));
    planned.get(EVENTS).setCoder(eventCoder);
    PCollectionTuple assembled = planned.get(SOURCES)
        .setCoder(ConversionCoders.SourceWorkCoder.INSTANCE)
        .apply("FanOutSources", Reshuffle.viaRandomKey())
        .apply("LocateSources", ParDo.of(new LocateFn()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), ConversionCoders.SourceWorkCoder.INSTANCE))
        .apply("AssembleSources", ParDo.of(new AssembleFn()).withOutputTags(TARGETS, TupleTagList.of(EVENTS)));
    assembled.get(EVENTS).setCoder(eventCoder);
    PCollection<KV<String, CommitEvent>> written = assembled.get(TARGETS)
        .setCoder(ConversionCoders.TargetWorkCoder.INSTANCE)
        .apply("FanOut", Reshuffle.viaRandomKey())
        .apply("WriteFiles", ParDo.of(new WriteFn()))
        .setCoder(eventCoder);
    PCollection<ConversionResult> committed = PCollectionList.of(planned.get(EVENTS)).and(assembled.get(EVENTS))
        .and(written)
        .apply("AllEvents", Flatten.pCollections())
        .apply("Commit", ParDo.of(new CommitFn()))
        .setCoder(ConversionResult.coder());
    PCollection<ConversionResult> all = PCollectionList.of(committed).and(claimed.get(CONFLICTS))
        .apply("Results", Flatten.pCollections());
    PCollectionTuple split = all.apply("SplitByOutcome", ParDo.of(new SplitFn())
        .withOutputTags(ConversionResults.SUCCEEDED, TupleTagList.of(ConversionResults.FAILED)));
    return new ConversionResults(split.get(ConversionResults.SUCCEEDED).setCoder(ConversionResult.coder()),
        split.get(ConversionResults.FAILED).setCoder(ConversionResult.coder()), all);
  }

  /** Succeeded (converted, already converted) and failed results to their own outputs. */
  static final class SplitFn extends DoFn<ConversionResult, ConversionResult> {
    @ProcessElement
    public void process(@Element ConversionResult r, MultiOutputReceiver out) {
      out.get(r.state == ConversionResult.State.FAILED ? ConversionResults.FAILED : ConversionResults.SUCCEEDED)
          .output(r);
    }
  }

  /** The message to report for a failure: the most specific one of its causes (runners wrap them). */
  public static String message(Throwable e) {
    String msg = e.getMessage();
    for (Throwable t = e; t != null && t.getCause() != t; t = t.getCause()) {
      if (t.getMessage() != null && !t.getMessage().isBlank()) {
        msg = t.getMessage();
      }
    }
    return msg == null ? e.toString() : msg;
  }

  static final class KeyBySaveDirFn extends DoFn<ConversionRequest, KV<String, ConversionRequest>> {
    @ProcessElement
    public void process(@Element ConversionRequest r, OutputReceiver<KV<String, ConversionRequest>> out) {
      out.output(KV.of(r.saveDir(), r));
    }
  }

  /**
   * One conversion per save dir: the first request claims it; the same conversion later is dropped (a duplicated
   * event, a repeated submission, the same flags spelled otherwise); a different one fails, since two conversions must
   * never write one folder.
   *
   * <p>In a streaming pipeline the claim is bounded: checked every {@link #RECHECK}, it is cleared once the save
   * dir has its completion marker (a later duplicate, asking to resume, finds the output complete and is reported as
   * already converted) or after {@link #CLAIM_TTL} (a conversion that failed leaves no marker). A batch pipeline's
   * state ends with the pipeline, so no timer is set there.
   */
  static final class ClaimFn extends DoFn<KV<String, ConversionRequest>, ConversionRequest> {
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
          recheck.offset(RECHECK).setRelative();
          expire.offset(CLAIM_TTL).setRelative();
        }
      } else if (!first.equals(e.getValue()) && !sameConversion(first, e.getValue())) {
        long now = System.currentTimeMillis();
        out.get(CONFLICTS).output(ConversionResult.failed(e.getValue(), "--save-dir " + e.getKey() + " is already the "
            + "output of another conversion (" + first + ") in this pipeline", List.of(), now));
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

  /**
   * Plans one request: checks it against its input's small files (config, index, tracker; no header is read here) and
   * hands out one {@link SourceWork} per input file to read, to be spread over the workers.
   */
  static final class PlanFn extends DoFn<ConversionRequest, SourceWork> {
    private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);

    @ProcessElement
    public void process(@Element ConversionRequest r, MultiOutputReceiver out) {
      long start = System.currentTimeMillis();
      String key = r.saveDir();
      try {
        CheckedConversion checked = ConversionPlanner.check(r);
        if (checked.alreadyConverted()) {
          out.get(EVENTS).output(KV.of(key, CommitEvent.alreadyConverted(r, start)));
          return;
        }
        checked.checkSaveDir(); // read-only: a refused save dir fails before any file is read
        List<SourceFile> files = checked.sources.files();
        if (files.isEmpty()) {
          throw new IOException(r.loadDir() + ": the conversion has no input file to read");
        }
        for (SourceFile f : files) {
          out.get(SOURCES).output(new SourceWork(key, r, checked.fingerprint, files.size(), f, checked.notes, start,
              null, null));
        }
      } catch (Exception e) {
        LOG.warn("{}: planning failed: {}", r, message(e));
        LOG.debug("planning failed", e);
        out.get(EVENTS).output(KV.of(key, CommitEvent.planFailed(r, message(e), start)));
      }
    }
  }

  /** Reads one input file's header or pickle: what it holds, keyed by conversion for the assembler. */
  static final class LocateFn extends DoFn<SourceWork, KV<String, SourceWork>> {
    private final Counter read = Metrics.counter(METRICS_NAMESPACE, "source_files_read");
    private transient Derived derived;

    @Setup
    public void setUp() {
      derived = new Derived();
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

  /**
   * Per conversion: gathers every input file as it is read (in any order); when all are there, makes the checks that
   * need every file (a tensor in two shards, parts of one tensor in different dtypes, FP8 scales), gives each target
   * its located sources, makes the save dir ready, and hands out one {@link TargetWork} per target file plus the
   * plan for the commit step. A file that could not be read fails the conversion, naming the first such file.
   */
  static final class AssembleFn extends DoFn<KV<String, SourceWork>, TargetWork> {
    private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
    private transient Derived derived;

    @StateId("located")
    private final StateSpec<BagState<SourceWork>> locatedSpec = StateSpecs.bag(ConversionCoders.SourceWorkCoder.INSTANCE);

    @StateId("count")
    private final StateSpec<ValueState<Integer>> countSpec = StateSpecs.value(VarIntCoder.of());

    @Setup
    public void setUp() {
      derived = new Derived();
    }

    @ProcessElement
    public void process(@Element KV<String, SourceWork> e, @StateId("located") BagState<SourceWork> located,
        @StateId("count") ValueState<Integer> count, MultiOutputReceiver out) {
      SourceWork w = e.getValue();
      located.add(w);
      Integer seen = count.read();
      int n = seen == null ? 1 : seen + 1;
      if (n < w.files) {
        count.write(n);
        return;
      }
      List<SourceWork> all = new ArrayList<>();
      located.read().forEach(all::add);
      located.clear();
      count.clear();
      all.sort(Comparator.comparing((SourceWork s) -> s.file.path()));
      ConversionRequest r = w.request;
      try {
        for (SourceWork s : all) {
          if (s.error != null) {
            throw new IOException(s.error);
          }
        }
        CheckedConversion checked = derived.of(r, w.fingerprint);
        List<LocatedFile> files = new ArrayList<>();
        all.forEach(s -> files.add(s.located));
        InputSources.Located sources = checked.sources.assemble(files);
        Map<String, Map<String, TensorLocation>> targets = checked.targets(sources);
        checked.prepareSaveDir();
        List<String> notes = new ArrayList<>(w.notes);
        notes.addAll(sources.notes());
        notes.forEach(note -> LOG.info("{}: note: {}", r.loadDir(), note));
        out.get(EVENTS).output(KV.of(w.conversion, CommitEvent.planned(r, w.fingerprint, targets.size(), notes,
            w.startMillis)));
        for (Map.Entry<String, Map<String, TensorLocation>> t : targets.entrySet()) {
          out.get(TARGETS).output(new TargetWork(w.conversion, r, t.getKey(), t.getValue(), w.fingerprint));
        }
      } catch (Exception x) {
        LOG.warn("{}: planning failed: {}", r, message(x));
        LOG.debug("planning failed", x);
        out.get(EVENTS).output(KV.of(w.conversion, CommitEvent.planFailed(r, message(x), w.startMillis)));
      }
    }
  }

  /** Writes one target file (or, resuming, keeps it when an earlier attempt finished it intact). */
  static final class WriteFn extends DoFn<TargetWork, KV<String, CommitEvent>> {
    private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
    private final Counter files = Metrics.counter(METRICS_NAMESPACE, "files_written");
    private final Counter bytes = Metrics.counter(METRICS_NAMESPACE, "bytes_written");
    private final Counter kept = Metrics.counter(METRICS_NAMESPACE, "files_kept");
    private final Counter failures = Metrics.counter(METRICS_NAMESPACE, "files_failed");
    private transient Derived derived;

    @Setup
    public void setUp() {
      derived = new Derived();
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

  /**
   * Plans, source locators and commits derived again on a worker from a request ({@link ConversionPlanner#derive}),
   * by conversion: every input file and target of a conversion needs the same plan, and some plans derive their contents from the whole layout
   * (mcore → HF inverts every rank file), so each DoFn instance derives one once. One cache per instance, as a DoFn
   * instance runs on one thread at a time: plans fill their caches lazily and are not shared between threads. A
   * derived plan whose fingerprint is not the planned one means that the input changed while it was converted.
   */
  static final class Derived {
    private final Map<String, CheckedConversion> byConversion = new LinkedHashMap<>(8, 0.75f, true) {
      @Override
      protected boolean removeEldestEntry(Map.Entry<String, CheckedConversion> eldest) {
        return size() > 4;
      }
    };

    CheckedConversion of(ConversionRequest r, String fingerprint) throws IOException {
      // the same conversion into another save dir, or spelled otherwise, has its own commit (folder, provenance)
      String key = fingerprint + "\n" + r.saveDir() + "\n" + r.options();
      CheckedConversion known = byConversion.get(key);
      if (known != null) {
        return known;
      }
      CheckedConversion derived = ConversionPlanner.derive(r);
      if (!derived.fingerprint.equals(fingerprint)) {
        throw new IOException(r.loadDir() + ": the input changed while it was being converted (its config, index or "
            + "tracker is not the one planned with); convert it again");
      }
      byConversion.put(key, derived);
      return derived;
    }
  }

  /**
   * Per conversion: remembers the plan and every file as it arrives (in any order); when all expected files are
   * there, commits (manifest, then marker) and emits the result. A failed file fails the conversion: no marker.
   */
  static final class CommitFn extends DoFn<KV<String, CommitEvent>, ConversionResult> {
    private static final Logger LOG = LoggerFactory.getLogger(CheckpointConversion.class);
    private final Counter converted = Metrics.counter(METRICS_NAMESPACE, "conversions_converted");
    private final Counter already = Metrics.counter(METRICS_NAMESPACE, "conversions_already_converted");
    private final Counter failed = Metrics.counter(METRICS_NAMESPACE, "conversions_failed");
    private transient Derived derived;

    @Setup
    public void setUp() {
      derived = new Derived();
    }

    @StateId("plan")
    private final StateSpec<ValueState<CommitEvent>> planSpec = StateSpecs.value(ConversionCoders.CommitEventCoder.INSTANCE);

    @StateId("arrived")
    private final StateSpec<BagState<CommitEvent>> arrivedSpec = StateSpecs.bag(ConversionCoders.CommitEventCoder.INSTANCE);

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
}
