package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.apache.beam.runners.direct.DirectOptions;
import org.apache.beam.sdk.options.PipelineOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The command line: help for every command and flag, --version, typo suggestions, progress, README in step. */
class CommandLineTest {
  @TempDir Path work;

  private static final class Out {
    final int exit;
    final String out;
    final String err;

    Out(String... argv) {
      ByteArrayOutputStream o = new ByteArrayOutputStream();
      ByteArrayOutputStream e = new ByteArrayOutputStream();
      exit = Main.run(argv, new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true,
          StandardCharsets.UTF_8));
      out = o.toString(StandardCharsets.UTF_8);
      err = e.toString(StandardCharsets.UTF_8);
    }
  }

  @Test
  void everyCommandsHelpListsEveryFlagWithItsMeaning() {
    for (String command : Main.COMMANDS.keySet()) {
      Out help = new Out(command, "--help");
      assertEquals(0, help.exit, command + ": " + help.err);
      assertTrue(help.out.startsWith("Usage: ckptbeam " + command), help.out);
      for (String flag : Main.COMMANDS.get(command).flags.get().names()) {
        assertTrue(help.out.contains("--" + flag), command + " --help lacks --" + flag + ":\n" + help.out);
      }
    }
    String hf2mcore = new Out("hf2mcore", "--help").out;
    assertTrue(hf2mcore.contains("--target-tensor-parallel-size=N"), hf2mcore);
    assertTrue(hf2mcore.contains("(default: 1)"), hf2mcore);
    assertTrue(hf2mcore.contains("--mtp-num-layers, --num-nextn-predict-layers=M"), hf2mcore);
    Out list = new Out("--help");
    for (String command : Main.COMMANDS.keySet()) {
      assertTrue(list.out.contains("  " + command + " "), list.out);
    }
  }

  @Test
  void versionNamesCkptbeamAndBeam() {
    Out v = new Out("--version");
    assertEquals(0, v.exit);
    assertTrue(v.out.matches("ckptbeam 0\\.1\\.0 \\(Apache Beam 2\\.70\\.0, Java [^)]+\\)\\n"), v.out);
  }

  @Test
  void aTypoGetsTheNearestFlagOrCommand() {
    Out typo = new Out("hf2mcore", "--load-dir", work.toString(), "--save-dir", work.resolve("o").toString(),
        "--target-expert-paralel-size", "2");
    assertEquals(2, typo.exit);
    assertEquals("ckptbeam: error: unknown flag --target-expert-paralel-size (neither a ckptbeam flag nor a Beam "
        + "pipeline option); did you mean --target-expert-parallel-size?", typo.err.strip());
    Out tiny = new Out("make-tiny-model", "--out", work.toString(), "--layer", "3");
    assertEquals("ckptbeam: error: unknown flag --layer for make-tiny-model; did you mean --layers? (see ckptbeam "
        + "make-tiny-model --help)", tiny.err.strip());
    Out command = new Out("hf2mcor");
    assertEquals(2, command.exit);
    assertTrue(command.err.startsWith("ckptbeam: error: unknown command \"hf2mcor\"; did you mean hf2mcore?"),
        command.err);
    Out far = new Out("hf2mcore", "--load-dir", work.toString(), "--save-dir", work.resolve("o").toString(),
        "--completely-different", "1");
    assertFalse(far.err.contains("did you mean"), far.err);
    Out twice = new Out("hf2mcore", "--load-dir", "a", "--load-dir", "b");
    assertEquals("ckptbeam: error: --load-dir is given twice", twice.err.strip());
  }

  @Test
  void everyFlagIsInTheReadmeAndTheReadmesFlagTablesNameOnlyRealFlags() throws Exception {
    String readme = Files.readString(repo().resolve("README.md"));
    for (String command : Main.COMMANDS.keySet()) {
      for (String flag : Main.COMMANDS.get(command).flags.get().names()) {
        assertTrue(readme.contains("--" + flag), "README.md does not mention " + command + " --" + flag);
      }
    }
    for (String command : List.of("hf2mcore", "mcore2hf")) {
      String table = readme.substring(readme.indexOf("### `" + command + "` flags"));
      table = table.substring(table.indexOf("\n| "), table.indexOf("\n\n", table.indexOf("\n| ")));
      TreeSet<String> known = new TreeSet<>(Main.COMMANDS.get(command).flags.get().names());
      Matcher m = Pattern.compile("`--([A-Za-z0-9-]+)").matcher(table);
      List<String> unknown = new ArrayList<>();
      while (m.find()) {
        if (!known.contains(m.group(1)) && !m.group(1).startsWith("runner") && !m.group(1).startsWith("flinkMaster")
            && !m.group(1).startsWith("target-") && !m.group(1).startsWith("source-")) {
          unknown.add(m.group(1));
        }
      }
      assertEquals(List.of(), unknown, command + "'s README table names flags the command does not have");
    }
  }

  @Test
  void docsCliIsTheHelpOfEveryCommand() throws Exception {
    StringBuilder b = new StringBuilder("# Command-line reference\n\nGenerated by `scripts/gen-cli-docs.sh` from "
        + "`bin/ckptbeam COMMAND --help`; a test keeps it current.\n\n```\n").append(Main.usage()).append("```\n");
    for (String command : Main.COMMANDS.keySet()) {
      b.append("\n## `").append(command).append("`\n\n```\n").append(Main.help(command)).append("```\n");
    }
    assertEquals(b.toString(), Files.readString(repo().resolve("docs/cli.md")),
        "docs/cli.md is out of date: run scripts/gen-cli-docs.sh");
  }

  @Test
  void progressCountsOnlyForwardAndEndsAtEveryFile() {
    Progress.Renderer tty = new Progress.Renderer("hf2mcore", 8, 8_000_000_000L, true);
    Progress.Renderer log = new Progress.Renderer("hf2mcore", 8, 8_000_000_000L, false);
    long[] bytes = {0, 1_000_000_000L, 900_000_000L, 4_000_000_000L, 8_200_000_000L, 0};
    int[] files = {0, 1, 1, 4, 7, 8};
    List<String> printed = new ArrayList<>();
    int lastPercent = -1;
    for (int i = 0; i < bytes.length; i++) {
      long t = (i + 1) * 1_000_000_000L;
      String line = tty.render(new Progress.Snapshot(files[i], bytes[i]), t);
      assertTrue(line.startsWith("\r") && line.endsWith("\u001b[K"), line);
      int percent = Integer.parseInt(line.replaceAll("(?s).*\\((\\d+)%\\).*", "$1"));
      assertTrue(percent >= lastPercent, "monotone: " + percent + " after " + lastPercent);
      lastPercent = percent;
      String plain = log.render(new Progress.Snapshot(files[i], bytes[i]), t);
      if (plain != null) {
        assertFalse(plain.contains("\r"), plain);
        printed.add(plain.strip());
      }
    }
    assertEquals(100, lastPercent);
    assertTrue(tty.render(new Progress.Snapshot(8, 0), 7_000_000_000L)
        .contains("8/8 files (100%), 8.20 GB/8.00 GB"), "the commit removed the records: still 8 of 8");
    assertEquals("hf2mcore: 0/8 files (0%), 0.00 GB/8.00 GB, 0 MB/s, ETA -", printed.get(0));
    assertEquals("hf2mcore: 8/8 files (100%), 8.20 GB/8.00 GB, 1367 MB/s, done", printed.get(printed.size() - 1));
    assertEquals(5, printed.size(), "a line per tenth passed, not per sample: " + printed);
  }

  @Test
  void aConversionPrintsNoProgressBytesWhenStdoutIsNotATerminal() throws Exception {
    Path hf = work.resolve("hf");
    TinyModel.write(hf, TinyModel.DEFAULTS);
    Out run = new Out("hf2mcore", "--load-dir", hf.toString(), "--save-dir", work.resolve("m").toString());
    assertEquals(0, run.exit, run.err);
    assertFalse(run.out.contains("\r") || run.out.contains("\u001b"), run.out);
    assertTrue(run.out.contains("wrote "), run.out);
  }

  @Test
  void theDirectRunnersPerElementEnforcementIsOffUnlessTheUserAsksForIt() {
    DirectOptions byDefault = Cli.pipelineOptions(List.of(), "t", List.of()).as(DirectOptions.class);
    assertEquals(List.of(false, false), List.of(byDefault.isEnforceImmutability(), byDefault.isEnforceEncodability()));
    DirectOptions asked = Cli.pipelineOptions(List.of("--enforceImmutability=true", "--enforceEncodability=true"), "t",
        List.of()).as(DirectOptions.class);
    assertEquals(List.of(true, true), List.of(asked.isEnforceImmutability(), asked.isEnforceEncodability()));
  }

  @Test
  void theDirectRunnerGetsNoMoreWorkersThanFilesToWrite() {
    PipelineOptions o = Cli.pipelineOptions(List.of("--targetParallelism=3"), "t", List.of());
    Cli.fitDirectWorkers(o, 5);
    assertEquals(3, o.as(DirectOptions.class).getTargetParallelism());
    Cli.fitDirectWorkers(o, 0); // nothing planned (an output already complete): left as it is
    assertEquals(3, o.as(DirectOptions.class).getTargetParallelism());
    Cli.fitDirectWorkers(o, 1);
    assertEquals(1, o.as(DirectOptions.class).getTargetParallelism());
  }

  private static Path repo() {
    Path p = Path.of("").toAbsolutePath();
    while (!Files.exists(p.resolve("README.md")) || !Files.exists(p.resolve("pipelines"))) {
      p = p.getParent();
    }
    return p;
  }
}
