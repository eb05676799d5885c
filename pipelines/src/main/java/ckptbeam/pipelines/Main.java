package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionPlanner;
import ckptbeam.transforms.LayoutException;
import java.io.PrintStream;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.apache.beam.sdk.util.ReleaseInfo;

/** The {@code ckptbeam} command line: one subcommand per job, each with {@code --help}. */
public final class Main {
  /** A subcommand: what it does, its flags, and how to run it. */
  static final class Command {
    final String summary;
    final Supplier<Args> flags;
    final Runner runner;
    final String moreHelp;

    Command(String summary, Supplier<Args> flags, Runner runner, String moreHelp) {
      this.summary = summary;
      this.flags = flags;
      this.runner = runner;
      this.moreHelp = moreHelp;
    }
  }

  @FunctionalInterface
  private interface Runner {
    /** Runs the command; returns the exit code. */
    int run(String[] argv, PrintStream out) throws Exception;
  }

  private static final String BEAM_FLAGS = "Any other --flag=value is a Beam pipeline option (--runner=FlinkRunner, "
      + "--flinkMaster=HOST:PORT, --parallelism=N, --runner=DataflowRunner --project=P --region=R "
      + "--tempLocation=gs://B/tmp, ...); an unknown one is an error.";

  static final Map<String, Command> COMMANDS = new LinkedHashMap<>();

  static {
    COMMANDS.put("hf2mcore", new Command("HF safetensors checkpoint -> Megatron-core rank files (the flags of "
        + "MindSpeed-LLM's convert_ckpt_deepseek3.py).", Hf2Mcore::flags, (a, out) -> {
          Hf2Mcore.run(a, out);
          return 0;
        }, BEAM_FLAGS));
    COMMANDS.put("mcore2hf", new Command("Megatron-core rank files -> HF safetensors checkpoint, LoRA merged or "
        + "exported (the flags of MindSpeed-LLM's convert_ckpt_deepseek3_mcore2hf.py).", Mcore2Hf::flags, (a, out) -> {
          Mcore2Hf.run(a, out);
          return 0;
        }, BEAM_FLAGS));
    COMMANDS.put("mcore2mcore", new Command("Megatron-core rank files -> the same model in another layout, in one "
        + "pass (= mcore2hf then hf2mcore), LoRA merged when asked.", Mcore2Mcore::flags, (a, out) -> {
          Mcore2Mcore.run(a, out);
          return 0;
        }, BEAM_FLAGS));
    COMMANDS.put("fp8-to-bf16", new Command("DeepSeek's FP8 release -> bf16 on the CPU, file for file (replaces "
        + "fp8_cast_bf16.py).", Fp8ToBf16::flags, (a, out) -> {
          Fp8ToBf16.run(a, out);
          return 0;
        }, BEAM_FLAGS));
    COMMANDS.put("watch", new Command("Streaming: convert every checkpoint folder that appears under a pattern, once, "
        + "when it is complete.", WatchCommand::flags, (a, out) -> {
          WatchCommand.run(a, out);
          return 0;
        }, "Also takes the flags of the --direction's command (see ckptbeam hf2mcore --help, ckptbeam mcore2hf "
        + "--help) but --load-dir, --save-dir, --overwrite, --resume, and Beam options; --streaming is implied."));
    COMMANDS.put("verify", new Command("--load-dir OUT: re-hash a conversion's files against its manifest; --hf H "
        + "--mcore S [layout]: prove that two checkpoints hold the same model.", Verify::flags,
        (a, out) -> Verify.run(a, out) == 0 ? 0 : 1, "With --hf and --mcore, also takes Beam options: the proof is "
        + "a pipeline (one element per rank file), on any runner; a runner whose workers do not share this machine's "
        + "temporary folder needs --tempLocation."));
    COMMANDS.put("make-tiny-model", new Command("Write a seeded synthetic checkpoint with DeepSeek-V3's tensor names, "
        + "shapes and dtypes.", TinyModel::flags, (a, out) -> {
          TinyModel.run(a, out);
          return 0;
        }, null));
    COMMANDS.put("demo", new Command("Make a tiny model, convert it (grouped GEMM, MTP), print what was written.",
        Demo::flags, (a, out) -> {
          Demo.run(a, out);
          return 0;
        }, null));
  }

  private Main() {}

  /** The command list. */
  static String usage() {
    StringBuilder b = new StringBuilder("Usage: ckptbeam COMMAND [flags]   (ckptbeam COMMAND --help for its flags)\n\n"
        + "Moves DeepSeek-V3-architecture and DeepSeek-V4 checkpoints between HF safetensors and Megatron-core, on the DirectRunner, "
        + "Flink or Dataflow.\n\nCommands:\n");
    COMMANDS.forEach((name, c) -> b.append(String.format("  %-16s %s%n", name, c.summary)));
    b.append("\n  --version        Print the version of ckptbeam and of Apache Beam.\n");
    b.append("\nEnvironment (bin/ckptbeam):\n"
        + "  JAVA_OPTS        Options for the JVM, e.g. -Xmx256m (after the launcher's serial collector and JIT "
        + "thresholds; a collector named here replaces the serial one). -Dckptbeam.directWrites=false writes local "
        + "output files through the page cache instead of with direct I/O.\n"
        + "  CKPTBEAM_JAR     Run this jar instead of the one built under pipelines/target.\n"
        + "  CKPTBEAM_CDS     0: start without the class-data-sharing archive the build records next to the jar; "
        + "record: record one for the jar in use (run a conversion or demo with it).\n"
        + "  CKPTBEAM_DEBUG   1: print the stack trace of a failure and ckptbeam's debug log.\n");
    return b.toString();
  }

  /** The help of one command: every flag with its meaning and default. */
  static String help(String name) {
    Command c = COMMANDS.get(name);
    String text = c.flags.get().usage("ckptbeam " + name, c.summary);
    return c.moreHelp == null ? text : text + "\n" + c.moreHelp + "\n";
  }

  static String version() {
    return "ckptbeam " + ConversionPlanner.VERSION + " (Apache Beam "
        + ReleaseInfo.getReleaseInfo().getVersion() + ", Java " + System.getProperty("java.version") + ")";
  }

  /** {@code CKPTBEAM_DEBUG=1}: the stack trace of a failure, and ckptbeam's debug log. */
  static boolean debug() {
    String d = System.getenv("CKPTBEAM_DEBUG");
    return d != null && !d.isEmpty() && !d.equals("0");
  }

  public static void main(String[] argv) {
    // A failed conversion is reported once, as the command's error line; the transform's own warning (meant for
    // pipelines that embed it) would repeat it. Set before the first logger is made, which reads these properties.
    // Flink [local] and the FlinkRunner log a failed job's stack trace at ERROR (and start-up chatter at WARN); the
    // same failure ends the command with its message. JAVA_OPTS can set any of these properties itself.
    if (debug()) {
      System.setProperty("org.slf4j.simpleLogger.log.ckptbeam", "debug");
    } else {
      defaultProperty("org.slf4j.simpleLogger.log.ckptbeam.transforms.beam.CheckpointConversion", "error");
      defaultProperty("org.slf4j.simpleLogger.log.org.apache.flink", "off");
      defaultProperty("org.slf4j.simpleLogger.log.org.apache.beam.runners.flink", "off");
    }
    System.exit(run(argv, System.out, System.err));
  }

  /** Runs a command; returns the process exit code (0 ok, 1 failed, 2 bad usage). */
  public static int run(String[] argv, PrintStream out, PrintStream err) {
    if (argv.length == 0 || List.of("help", "--help", "-h").contains(argv[0])) {
      out.print(usage());
      return argv.length == 0 ? 2 : 0;
    }
    if (argv[0].equals("--version") || argv[0].equals("version")) {
      out.println(version());
      return 0;
    }
    Command c = COMMANDS.get(argv[0]);
    if (c == null) {
      String near = Args.nearest(argv[0], List.copyOf(COMMANDS.keySet()));
      err.println("ckptbeam: error: unknown command \"" + argv[0] + "\"" + (near == null ? ""
          : "; did you mean " + near + "?") + "\n\n" + usage());
      return 2;
    }
    String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
    if (Arrays.asList(rest).contains("--help") || Arrays.asList(rest).contains("-h")) {
      out.print(help(argv[0]));
      return 0;
    }
    try {
      return c.runner.run(rest, out);
    } catch (LayoutException e) {
      err.println("ckptbeam: error: " + LayoutFlags.message(e, argv[0], Arrays.asList(rest)));
      stackTraceIfDebug(e, err);
      return 2;
    } catch (IllegalArgumentException e) {
      err.println("ckptbeam: error: " + e.getMessage());
      stackTraceIfDebug(e, err);
      return 2;
    } catch (Cli.ConversionFailed e) {
      err.println("ckptbeam: error: " + e.getMessage());
      stackTraceIfDebug(e, err);
      return 1;
    } catch (Exception e) {
      err.println("ckptbeam: error: " + Cli.rootMessage(e));
      stackTraceIfDebug(e, err);
      return 1;
    }
  }

  private static void defaultProperty(String key, String value) {
    if (System.getProperty(key) == null) {
      System.setProperty(key, value);
    }
  }

  private static void stackTraceIfDebug(Exception e, PrintStream err) {
    if (debug()) {
      e.printStackTrace(err);
    }
  }
}
