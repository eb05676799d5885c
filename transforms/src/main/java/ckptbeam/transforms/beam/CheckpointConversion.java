package ckptbeam.transforms.beam;

import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import org.apache.beam.sdk.coders.Coder;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.metrics.Metrics;
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

  static final TupleTag<SourceWork> SOURCES = new TupleTag<>() {};
  static final TupleTag<TargetWork> TARGETS = new TupleTag<>() {};
  static final TupleTag<KV<String, CommitEvent>> EVENTS = new TupleTag<>() {};
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
    KvCoder<String, CommitEvent> eventCoder =
        KvCoder.of(StringUtf8Coder.of(), ConversionCoders.CommitEventCoder.INSTANCE);
    PCollectionTuple claimed = requests
        .apply("KeyBySaveDir", ParDo.of(new KeyBySaveDirFn()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), requestCoder()))
        .apply("ClaimOutput", ParDo.of(new ClaimOutputFn()).withOutputTags(CLAIMED, TupleTagList.of(CONFLICTS)));
    claimed.get(CLAIMED).setCoder(requestCoder());
    claimed.get(CONFLICTS).setCoder(ConversionResult.coder());
    PCollectionTuple planned = claimed.get(CLAIMED)
        .apply("Plan", ParDo.of(new PlanFn()).withOutputTags(SOURCES, TupleTagList.of(EVENTS)));
    planned.get(EVENTS).setCoder(eventCoder);
    PCollectionTuple assembled = planned.get(SOURCES)
        .setCoder(ConversionCoders.SourceWorkCoder.INSTANCE)
        .apply("FanOutSources", Reshuffle.viaRandomKey())
        .apply("LocateSources", ParDo.of(new LocateSourcesFn()))
        .setCoder(KvCoder.of(StringUtf8Coder.of(), ConversionCoders.SourceWorkCoder.INSTANCE))
        .apply("AssembleSources", ParDo.of(new AssembleSourcesFn()).withOutputTags(TARGETS, TupleTagList.of(EVENTS)));
    assembled.get(EVENTS).setCoder(eventCoder);
    PCollection<KV<String, CommitEvent>> written = assembled.get(TARGETS)
        .setCoder(ConversionCoders.TargetWorkCoder.INSTANCE)
        .apply("FanOut", Reshuffle.viaRandomKey())
        .apply("WriteFiles", ParDo.of(new WriteFilesFn()))
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

}
