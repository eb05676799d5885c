package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The kill test: a conversion killed with SIGKILL in the middle of writing leaves nothing that looks complete, and
 * {@code --resume} finishes it into exactly the bytes of an uninterrupted run, keeping the files already done.
 */
class ResumeTest {
  @TempDir Path work;

  private static final List<String> LAYOUT = List.of("--target-tensor-parallel-size", "2",
      "--target-pipeline-parallel-size", "2", "--target-expert-parallel-size", "4", "--moe-grouped-gemm",
      "--mtp-num-layers", "1");

  private List<String> command(String save, String... extra) {
    List<String> cmd = new ArrayList<>(List.of(Torch.repo().resolve("bin/ckptbeam").toString(), "hf2mcore",
        "--load-dir", work.resolve("hf").toString(), "--save-dir", work.resolve(save).toString()));
    cmd.addAll(LAYOUT);
    cmd.addAll(List.of(extra));
    return cmd;
  }

  @Test
  void killedRunResumesToTheBytesOfAnUninterruptedRun() throws Exception {
    // about 600 MB in 16 rank files: long enough to be caught half way
    Torch.Result made = Torch.run(List.of(Torch.repo().resolve("bin/ckptbeam").toString(), "make-tiny-model", "--out",
        "hf", "--hidden-size", "512", "--experts", "16", "--moe-intermediate-size", "1024", "--intermediate-size",
        "1024", "--layers", "4", "--first-k-dense", "1", "--vocab-size", "8192", "--heads", "8", "--q-lora-rank", "64",
        "--kv-lora-rank", "32", "--qk-nope-head-dim", "16", "--qk-rope-head-dim", "8", "--v-head-dim", "16"), work,
        null);
    assertEquals(0, made.exit, made.output);

    Path out = work.resolve("killed");
    Process p = new ProcessBuilder(command("killed")).redirectErrorStream(true)
        .redirectOutput(work.resolve("killed.log").toFile()).start();
    Path progress = out.resolve(".ckptbeam-progress");
    long deadline = System.nanoTime() + TimeUnit.MINUTES.toNanos(5);
    while (p.isAlive() && System.nanoTime() < deadline && !(Files.isDirectory(progress) && count(progress) >= 1)) {
      Thread.sleep(20);
    }
    assertTrue(p.isAlive(), "the conversion finished before it could be killed: " + Files.readString(
        work.resolve("killed.log")));
    p.destroyForcibly(); // SIGKILL
    p.waitFor();
    assertFalse(Files.exists(out.resolve("latest_checkpointed_iteration.txt")), "a killed run looks complete");
    assertFalse(Files.exists(out.resolve("ckptbeam-manifest.json")));
    int done = count(progress);
    assertTrue(done >= 1 && done < 16, "files finished before the kill: " + done);

    Torch.Result refused = Torch.run(command("killed"), work, null);
    assertTrue(refused.exit != 0 && refused.output.contains("pass --overwrite"), refused.output);
    Torch.Result resumed = Torch.run(command("killed", "--resume"), work, null);
    assertEquals(0, resumed.exit, resumed.output);
    Torch.Result clean = Torch.run(command("clean"), work, null);
    assertEquals(0, clean.exit, clean.output);

    TreeMap<String, byte[]> a = Checkpoints.contents(out);
    TreeMap<String, byte[]> b = Checkpoints.contents(work.resolve("clean"));
    assertEquals(b.keySet(), a.keySet());
    for (Map.Entry<String, byte[]> e : b.entrySet()) {
      assertArrayEquals(e.getValue(), a.get(e.getKey()), e.getKey());
    }
    assertFalse(Files.exists(progress), "progress records are gone once the manifest is written");
    Torch.Result verified = Torch.run(List.of(Torch.repo().resolve("bin/ckptbeam").toString(), "verify", "--load-dir",
        out.toString()), work, null);
    assertEquals(0, verified.exit, verified.output);
  }

  private static int count(Path dir) throws Exception {
    if (!Files.isDirectory(dir)) {
      return 0;
    }
    try (Stream<Path> s = Files.list(dir)) {
      return (int) s.filter(f -> f.toString().endsWith(".json")).count();
    }
  }
}
