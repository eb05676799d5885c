package ckptbeam.pipelines;

import java.io.PrintStream;
import java.util.Arrays;

/** The {@code ckptbeam} command line. */
public final class Main {
  static final String USAGE = String.join("\n",
      "usage: ckptbeam COMMAND [flags]",
      "",
      "commands:",
      "  hf2mcore         HF safetensors checkpoint -> Megatron-core rank files",
      "                   --load-dir D --save-dir S [layout flags] [Beam flags, e.g. --runner=FlinkRunner]",
      "  mcore2hf         Megatron-core rank files -> HF safetensors checkpoint",
      "                   --load-dir S --save-dir H [--source-* layout flags] [Beam flags]",
      "  fp8-to-bf16      DeepSeek's FP8 release -> bf16 on the CPU (replaces fp8_cast_bf16.py): --load-dir F --save-dir B",
      "  watch            streaming: convert every checkpoint folder that appears, once, when complete",
      "                   --direction hf2mcore|mcore2hf --input-pattern 'gs://b/in/*/' --save-root gs://b/out/",
      "                   [--notifications projects/P/subscriptions/S] [--poll-interval S] [--stop-after-idle S] [--detach]",
      "                   [conversion flags] [Beam flags, e.g. --runner=FlinkRunner]",
      "  verify           --load-dir OUT: re-hash against the manifest; --hf H --mcore S [layout]: prove equality",
      "  make-tiny-model  write a seeded synthetic DeepSeek-V3-architecture checkpoint: --out D [size flags]",
      "  demo             make a tiny model, convert it, print what was written",
      "",
      "see README.md for every flag");

  private Main() {}

  public static void main(String[] argv) {
    System.exit(run(argv, System.out, System.err));
  }

  /** Runs a command; returns the process exit code (0 ok, 1 failed, 2 bad usage). */
  public static int run(String[] argv, PrintStream out, PrintStream err) {
    if (argv.length == 0 || argv[0].equals("help") || argv[0].equals("--help") || argv[0].equals("-h")) {
      out.println(USAGE);
      return argv.length == 0 ? 2 : 0;
    }
    String[] rest = Arrays.copyOfRange(argv, 1, argv.length);
    try {
      switch (argv[0]) {
        case "hf2mcore":
          Hf2Mcore.run(rest, out);
          return 0;
        case "make-tiny-model":
          TinyModel.run(rest, out);
          return 0;
        case "demo":
          Demo.run(rest, out);
          return 0;
        case "mcore2hf":
          Mcore2Hf.run(rest, out);
          return 0;
        case "fp8-to-bf16":
          Fp8ToBf16.run(rest, out);
          return 0;
        case "verify":
          return Verify.run(rest, out) == 0 ? 0 : 1;
        case "watch":
          WatchCommand.run(rest, out);
          return 0;
        default:
          err.println("ckptbeam: error: unknown command \"" + argv[0] + "\"\n" + USAGE);
          return 2;
      }
    } catch (IllegalArgumentException e) {
      err.println("ckptbeam: error: " + e.getMessage());
      return 2;
    } catch (Cli.ConversionFailed e) {
      err.println("ckptbeam: error: " + e.getMessage());
      return 1;
    } catch (Exception e) {
      err.println("ckptbeam: error: " + Cli.rootMessage(e));
      return 1;
    }
  }
}
