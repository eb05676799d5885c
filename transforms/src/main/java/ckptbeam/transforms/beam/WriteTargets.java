package ckptbeam.transforms.beam;

import ckptbeam.io.TensorLocation;
import ckptbeam.transforms.ConversionPlan;
import java.io.IOException;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.join.CoGbkResult;
import org.apache.beam.sdk.transforms.join.CoGroupByKey;
import org.apache.beam.sdk.transforms.join.KeyedPCollectionTuple;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Groups source locations by target file and writes each target: one writer per file, which streams the bytes
 * from the sources. Every target of the plan is written, also one that needs no source.
 */
public final class WriteTargets extends PTransform<PCollection<KV<String, TensorLocation>>, PCollection<WrittenFile>> {
  private static final TupleTag<TensorLocation> SOURCES = new TupleTag<>() {};
  private static final TupleTag<Integer> TARGETS = new TupleTag<>() {};

  private final ConversionPlan plan;
  private final String saveDir;
  private final String fingerprint;
  private final boolean resume;

  private WriteTargets(ConversionPlan plan, String saveDir, String fingerprint, boolean resume) {
    this.plan = plan;
    this.saveDir = saveDir;
    this.fingerprint = fingerprint;
    this.resume = resume;
  }

  public static WriteTargets of(ConversionPlan plan, String saveDir) {
    return new WriteTargets(plan, saveDir, "", false);
  }

  /**
   * Each finished file gets a progress record carrying {@code fingerprint}; with {@code resume}, a file whose record
   * matches and which is still intact is kept instead of being written again.
   */
  public WriteTargets withProgress(String fingerprint, boolean resume) {
    return new WriteTargets(plan, saveDir, fingerprint, resume);
  }

  @Override
  public PCollection<WrittenFile> expand(PCollection<KV<String, TensorLocation>> located) {
    List<KV<String, Integer>> seeds = new ArrayList<>();
    for (String target : plan.targets()) {
      seeds.add(KV.of(target, 0));
    }
    PCollection<KV<String, Integer>> all = located.getPipeline().apply("Targets", Create.of(seeds));
    return KeyedPCollectionTuple.of(SOURCES, located)
        .and(TARGETS, all)
        .apply("GroupByTargetFile", CoGroupByKey.create())
        .apply("WriteFile", ParDo.of(new WriteFn(plan, saveDir, fingerprint, resume)));
  }

  static final class WriteFn extends DoFn<KV<String, CoGbkResult>, WrittenFile> {
    private final ConversionPlan plan;
    private final String saveDir;
    private final String fingerprint;
    private final boolean resume;

    WriteFn(ConversionPlan plan, String saveDir, String fingerprint, boolean resume) {
      this.plan = plan;
      this.saveDir = saveDir;
      this.fingerprint = fingerprint;
      this.resume = resume;
    }

    @StartBundle
    public void startBundle(StartBundleContext c) {
      ckptbeam.io.StagedOutput.useOptions(c.getPipelineOptions()); // gs:// uploads follow this pipeline's endpoint
    }

    @ProcessElement
    public void process(@Element KV<String, CoGbkResult> e, OutputReceiver<WrittenFile> out, PipelineOptions options)
        throws IOException {
      if (!e.getValue().getAll(TARGETS).iterator().hasNext()) {
        throw new IllegalStateException("sources were routed to " + e.getKey() + ", which is not a target");
      }
      Map<String, TensorLocation> sources = new HashMap<>();
      for (TensorLocation loc : e.getValue().getAll(SOURCES)) {
        sources.put(loc.name(), loc);
      }
      if (resume) {
        WrittenFile kept = ProgressRecord.reusable(saveDir, fingerprint, e.getKey());
        if (kept != null) {
          out.output(kept);
          return;
        }
      }
      WrittenFile written = plan.write(e.getKey(), sources, saveDir);
      if (!fingerprint.isEmpty()) {
        ProgressRecord.write(saveDir, fingerprint, written);
      }
      FaultInjectionOptions.afterWriting(options, e.getKey());
      out.output(written);
    }
  }
}
