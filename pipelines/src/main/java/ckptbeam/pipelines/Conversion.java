package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.CheckedConversion;
import ckptbeam.transforms.CheckpointCommit;
import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.OutputRecords;
import ckptbeam.transforms.beam.CheckpointConversion;
import ckptbeam.transforms.beam.ConversionResult;
import java.io.IOException;
import java.io.PrintStream;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;

/**
 * What the conversion commands share: the request's provenance and save-dir policy from the flags, the checks made
 * before anything is submitted (the planner's own), and the pipeline: {@code Create.of(request)} →
 * {@link CheckpointConversion} → a failed result fails the job with its message.
 */
final class Conversion {
  private Conversion() {}

  /** The flags every conversion command has besides its own: the save-dir policy and progress. */
  static Args common(Args a) {
    return a.flag("overwrite").help("Replace the content of a non-empty save dir (the marker is removed first).")
        .flag("resume").help("Finish an interrupted conversion: files whose progress record, size and SHA-256 match "
            + "are kept; an output already complete for the same conversion is left as it is.")
        .flag("quiet").help("No progress output.");
  }

  /** The flags as the user gave them (paths made absolute), less those that do not change the output. */
  static Map<String, String> options(Args args) {
    Map<String, String> options = new TreeMap<>();
    args.values().forEach((k, v) -> {
      if (!k.equals("overwrite") && !k.equals("resume") && !k.equals("dry-run") && !k.equals("save-dir")
          && !k.equals("load-dir") && !k.equals("quiet")) {
        boolean path = k.equals("lora-load") || k.equals("model-config") || k.equals("hf-cfg-dir");
        options.put(k, path ? Cli.absolute(v) : v);
      }
    });
    return options;
  }

  /** {@code --overwrite} / {@code --resume}, which exclude each other. */
  static ConversionRequest.ExistingOutput existingOutput(Args args) {
    if (args.has("overwrite") && args.has("resume")) {
      throw new IllegalArgumentException("--overwrite and --resume exclude each other");
    }
    return args.has("overwrite") ? ConversionRequest.ExistingOutput.OVERWRITE
        : args.has("resume") ? ConversionRequest.ExistingOutput.RESUME : ConversionRequest.ExistingOutput.REFUSE;
  }

  /** The planner's checks, on the driver, before a job is submitted; prints the plan's notes. */
  static CheckedConversion check(ConversionRequest r, PipelineOptions options, PrintStream log)
      throws IOException {
    FileSystems.setDefaultPipelineOptions(options);
    CheckedConversion checked = ConversionPlanner.check(r);
    ModelTypeFlags.check(r, checked.plan.modelConfig()).forEach(n -> log.println("note: " + n));
    checked.notes.forEach(n -> log.println("note: " + n));
    return checked;
  }

  /**
   * Checks the request and builds its pipeline; nothing is written yet. An output already complete for the same
   * conversion ({@code --resume}) gives no pipeline.
   */
  static Built build(ConversionRequest r, PipelineOptions options, PrintStream log) throws IOException {
    refuseIgnoredFlinkRetries(options);
    CheckedConversion checked = check(r, options, log);
    if (checked.alreadyConverted()) {
      log.println(r.saveDir() + " already holds this conversion, complete (manifest and "
          + checked.commit.markerName() + "); nothing to do");
      return new Built(null, r.saveDir(), checked.commit.allFiles(), checked.commit.expected(), 0, checked.notes);
    }
    checked.checkSaveDir();
    // The save dir passed the refusal rule now; a job restarted by its runner must not refuse its own first attempt.
    ConversionRequest submitted = r.existingOutput() == ConversionRequest.ExistingOutput.REFUSE
        ? r.withExistingOutput(ConversionRequest.ExistingOutput.OVERWRITE) : r;
    Cli.fitDirectWorkers(options, checked.commit.expected().size());
    Pipeline p = Pipeline.create(options);
    p.apply("Request", Create.of(submitted))
        .apply("Convert", CheckpointConversion.convert())
        .failed()
        .apply("FailOnFailure", ParDo.of(new FailOnFailureFn()));
    return new Built(p, r.saveDir(), checked.commit.allFiles(), checked.commit.expected(),
        Math.max(0, checked.plannedBytes), checked.notes);
  }

  /** Builds, runs (with progress unless {@code quiet}) and reports; returns the bytes of the output. */
  static long run(ConversionRequest r, PipelineOptions options, PrintStream log, boolean quiet) throws Exception {
    long start = System.nanoTime();
    Built b = build(r, options, log);
    if (b.pipeline == null) {
      return 0; // already converted: build said so, and nothing was written
    }
    Progress progress = Progress.start(r.kind().command, r.saveDir(), b.dataFiles, b.plannedBytes, log, quiet);
    boolean ok = false;
    try {
      Cli.run(b.pipeline);
      ok = true;
    } finally {
      if (progress != null) {
        progress.finish(ok);
      }
    }
    printLaterNotes(b, log);
    return Cli.report(log, b.saveDir, b.files, System.nanoTime() - start);
  }

  /**
   * The notes the conversion found while reading the input's headers (tensors a shard stores but the index does not
   * name), which the checks before the job could not see: the manifest records every note; those not printed
   * before the job are printed now.
   */
  private static void printLaterNotes(Built b, PrintStream log) throws IOException {
    String manifest = CheckpointFiles.resolve(b.saveDir, CheckpointCommit.MANIFEST);
    for (String note : OutputRecords.read(CheckpointFiles.readSmallFile(manifest, 256L << 20),
        OutputRecords.Manifest.class).notes()) {
      if (!b.notesShown.contains(note)) {
        log.println("note: " + note);
      }
    }
  }

  /**
   * Beam 2.70's FlinkRunner translates a batch pipeline with Flink's DataSet API and never applies
   * {@code --numberOfExecutionRetries} or {@code --executionRetryDelay} there (only its DataStream translation, chosen
   * by {@code --useDataStreamForBatch=true}, sets them on the job); accepted, they would promise retries the job does
   * not have. Refused instead, saying where retries come from.
   */
  static void refuseIgnoredFlinkRetries(PipelineOptions options) {
    if (!options.getRunner().getSimpleName().equals("FlinkRunner")
        || options.as(StreamingOptions.class).isStreaming()) {
      return;
    }
    FlinkPipelineOptions flink = options.as(FlinkPipelineOptions.class);
    boolean retries = flink.getNumberOfExecutionRetries() != null && flink.getNumberOfExecutionRetries() >= 0;
    boolean delay = flink.getExecutionRetryDelay() != null && flink.getExecutionRetryDelay() >= 0;
    if ((retries || delay) && !Boolean.TRUE.equals(flink.getUseDataStreamForBatch())) {
      throw new IllegalArgumentException((retries ? "--numberOfExecutionRetries" : "--executionRetryDelay")
          + " has no effect on a batch job in Beam 2.70's FlinkRunner: a failed batch job is restarted by the "
          + "cluster's restart strategy (restart-strategy.* in flink-conf.yaml; scripts/local-flink-cluster.sh sets "
          + "one), or add --useDataStreamForBatch=true to have the job set its own");
    }
  }

  /** A command's job fails, with the conversion's message, when its conversion failed. */
  static final class FailOnFailureFn extends DoFn<ConversionResult, Void> {
    @ProcessElement
    public void process(@Element ConversionResult failed) throws IOException {
      throw new IOException(failed.message);
    }
  }
}
