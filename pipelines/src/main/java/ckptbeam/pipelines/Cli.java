package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.beam.CheckpointConversion;
import ckptbeam.transforms.beam.FaultInjectionOptions;
import java.io.IOException;
import java.io.PrintStream;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;

/** What the subcommands share: paths, Beam options, config reading, the save-dir rules, running, reporting. */
final class Cli {
  private Cli() {}

  /** How Beam's options factory names an option it does not know. */
  private static final Pattern UNKNOWN_OPTION =
      Pattern.compile("missing a property named '([^']+)'");

  /** A local path made absolute against the working directory (workers run elsewhere); URLs unchanged. */
  static String absolute(String path) {
    if (!CheckpointFiles.isLocal(path)) {
      return path;
    }
    return CheckpointFiles.localPath(path).toAbsolutePath().normalize().toString();
  }

  /**
   * Beam options from the flags the command did not know ({@code args}' leftovers); an unknown one is an error
   * naming it, with the nearest flag of the command when it looks like a typo.
   */
  static PipelineOptions pipelineOptions(Args args, String jobName) {
    return pipelineOptions(args.beamArgs(), jobName, args.names());
  }

  static PipelineOptions pipelineOptions(List<String> beamArgs, String jobName, List<String> known) {
    PipelineOptions o;
    PipelineOptionsFactory.register(FaultInjectionOptions.class);
    if (RunnerOptions.needed(beamArgs)) {
      RunnerOptions.registerAll();
    }
    try {
      o = parse(beamArgs);
    } catch (IllegalArgumentException e) {
      String msg = String.valueOf(e.getMessage());
      Matcher unknown = UNKNOWN_OPTION.matcher(msg);
      if (unknown.find() && RunnerOptions.registerAll()) {
        return pipelineOptions(beamArgs, jobName, known); // a runner's or Google Cloud's flag: known now
      }
      if (unknown.find(0)) {
        String name = unknown.group(1);
        String near = Args.nearest(name, known);
        throw new IllegalArgumentException("unknown flag --" + name
            + " (neither a ckptbeam flag nor a Beam pipeline option)" + (near == null ? ""
            : "; did you mean --" + near + "?"));
      }
      throw new IllegalArgumentException("invalid pipeline option: " + msg.split("\n")[0]);
    }
    o.setJobName("ckptbeam-" + jobName + "-" + System.currentTimeMillis());
    // The DirectRunner runs max(cores, 3) workers by default; on a 2-core machine the third only competes with the
    // writers (measured: 5.7 s instead of 4.2 s for a 1.7 GB rank file). Default to the core count.
    DirectOptions direct = o.as(DirectOptions.class);
    if (!given(beamArgs, "targetParallelism")) {
      direct.setTargetParallelism(Runtime.getRuntime().availableProcessors());
    }
    // The DirectRunner's enforcement encodes every element before and after each step to catch mutation. Ours are
    // immutable descriptions (the transform's tests run with enforcement on, and Flink encodes them for real);
    // checking them again per run cost 40% of a 2,339-tensor conversion (8.5 s -> 5 s measured).
    if (!given(beamArgs, "enforceImmutability")) {
      direct.setEnforceImmutability(false);
    }
    if (!given(beamArgs, "enforceEncodability")) {
      direct.setEnforceEncodability(false);
    }
    return o;
  }

  /**
   * No more DirectRunner workers than files to write: the runner's monitor busy-loops on any free worker thread while
   * a bundle runs (its QuiescenceDriver re-submits itself without waiting), so one file written with two workers has
   * one core spinning for the whole write (measured, one 4.7 GB rank file: 18.0 s with two workers, 12.5 s with
   * one). Every file is one bundle, so workers beyond the file count have nothing to do anyway.
   */
  static void fitDirectWorkers(PipelineOptions options, int files) {
    DirectOptions direct = options.as(DirectOptions.class);
    if (files > 0 && direct.getTargetParallelism() > files) {
      direct.setTargetParallelism(files);
    }
  }

  private static PipelineOptions parse(List<String> beamArgs) {
    return PipelineOptionsFactory.fromArgs(beamArgs.toArray(new String[0])).withValidation().create();
  }

  private static boolean given(List<String> beamArgs, String option) {
    return beamArgs.stream().anyMatch(a -> a.startsWith("--" + option));
  }

  /**
   * Runs a pipeline to the end and returns its result (null for a Dataflow template, which only writes the job
   * spec); a failure surfaces as the root cause's message.
   */
  static PipelineResult run(Pipeline p) throws Exception {
    try {
      PipelineResult result = p.run();
      // --templateLocation: the job spec is written; nothing runs now. (Compared by name: conversions also run
      // inside workers whose job jar has no Dataflow classes.)
      if (result.getClass().getName().equals("org.apache.beam.runners.dataflow.util.DataflowTemplateJob")) {
        return null;
      }
      PipelineResult.State state = result.waitUntilFinish();
      if (state != PipelineResult.State.DONE && state != null) {
        throw new IOException("pipeline ended in state " + state);
      }
      return result;
    } catch (Exception e) {
      throw new ConversionFailed(rootMessage(e), e);
    }
  }

  /** The most specific message of a runner's wrapped exception. */
  static String rootMessage(Throwable e) {
    return CheckpointConversion.message(e);
  }

  /** Prints what was written, read back from the save dir; returns the bytes. */
  static long report(PrintStream log, String saveDir, List<String> files, long nanos) throws IOException {
    long total = 0;
    for (String rel : files) {
      total += Math.max(0, CheckpointFiles.sizeOrMissing(CheckpointFiles.resolve(saveDir, rel)));
    }
    double seconds = nanos / 1e9;
    log.printf("wrote %d file(s), %,d bytes, to %s in %.1f s (%.1f MB/s)%n", files.size(), total, saveDir, seconds,
        total / 1e6 / Math.max(seconds, 1e-9));
    return total;
  }

  /** A conversion failed; the message is the one to show the user. */
  static final class ConversionFailed extends Exception {
    private static final long serialVersionUID = 1L;

    ConversionFailed(String message, Throwable cause) {
      super(message, cause);
    }
  }
}
