package ckptbeam.pipelines;

import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Collectors;
import java.util.stream.Stream;

/**
 * {@code ckptbeam demo}: generates the embedded tiny checkpoint, converts it with grouped GEMM and MTP, and prints
 * the files written. {@code --out D} keeps the result in D (default: a new temp folder).
 */
final class Demo {
  private Demo() {}

  static Args flags() {
    return new Args().value("out").help("DIR", "Where the tiny model and its conversion go.")
        .defaultValue("a new temporary folder");
  }

  static void run(String[] argv, PrintStream log) throws Exception {
    Args a = flags().parse(argv).noBeamArgs("demo");
    Path root = a.has("out") ? Paths.get(a.get("out")).toAbsolutePath() : Files.createTempDirectory("ckptbeam-demo-");
    Path hf = root.resolve("hf");
    Path mcore = root.resolve("mcore");
    log.println("1. generating a tiny DeepSeek-V3-architecture checkpoint in " + hf);
    TinyModel.run(new String[] {"--out", hf.toString()}, log);
    log.println("2. converting it to Megatron-core (grouped GEMM, 1 MTP layer) in " + mcore);
    List<String> args = new ArrayList<>(List.of("--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--moe-grouped-gemm", "--mtp-num-layers", "1"));
    args.addAll(a.beamArgs());
    Hf2Mcore.run(args.toArray(new String[0]), log);
    log.println("3. what was written:");
    for (Path p : list(mcore)) {
      log.printf("   %-60s %,12d bytes%n", mcore.relativize(p), Files.size(p));
    }
  }

  private static List<Path> list(Path dir) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      return s.filter(Files::isRegularFile).sorted().collect(Collectors.toList());
    }
  }
}
