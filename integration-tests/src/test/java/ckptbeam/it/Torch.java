package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/** Runs the independent checker of src/test/python with Debian's real PyTorch. */
final class Torch {
  static final String PYTHON = "/usr/bin/python3";

  private Torch() {}

  static Path repo() {
    return Paths.get(System.getProperty("ckptbeam.repo", "..")).toAbsolutePath().normalize();
  }

  /** Fails (never skips) when torch is not importable, saying how to install it. */
  static void requireTorch() throws Exception {
    Result r = run(List.of(PYTHON, "-c", "import torch; print(torch.__version__)"));
    if (r.exit != 0) {
      fail("real PyTorch is needed for this test but `" + PYTHON + " -c 'import torch'` failed:\n" + r.output
          + "\ninstall it with: apt-get install -y python3-torch");
    }
  }

  /** Runs check_mcore.py; asserts it reports every tensor equal and returns its output. */
  static String checkMcore(Path hf, Path mcore, String... layout) throws Exception {
    requireTorch();
    List<String> cmd = new ArrayList<>(List.of(PYTHON,
        repo().resolve("integration-tests/src/test/python/check_mcore.py").toString(),
        "--hf", hf.toString(), "--mcore", mcore.toString()));
    cmd.addAll(List.of(layout));
    Result r = run(cmd);
    assertEquals(0, r.exit, "check_mcore.py " + String.join(" ", layout) + " failed:\n" + r.output);
    return r.output;
  }

  static final class Result {
    final int exit;
    final String output;

    Result(int exit, String output) {
      this.exit = exit;
      this.output = output;
    }
  }

  static Result run(List<String> cmd) throws IOException, InterruptedException {
    return run(cmd, null, null);
  }

  static Result run(List<String> cmd, Path workDir, String javaOpts) throws IOException, InterruptedException {
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);
    if (workDir != null) {
      pb.directory(workDir.toFile());
    }
    if (javaOpts != null) {
      pb.environment().put("JAVA_OPTS", javaOpts);
    }
    Path out = Files.createTempFile("ckptbeam-proc-", ".log");
    pb.redirectOutput(out.toFile());
    Process p = pb.start();
    if (!p.waitFor(10, TimeUnit.MINUTES)) {
      p.destroyForcibly();
      fail("timed out: " + cmd);
    }
    String output = Files.readString(out, StandardCharsets.UTF_8);
    Files.delete(out);
    return new Result(p.exitValue(), output);
  }
}
