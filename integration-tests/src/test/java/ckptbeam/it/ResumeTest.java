package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
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

  /**
   * A conversion's identity is what decides its bytes: the same conversion with an explicit default, an alias or an
   * added default flag is "already converted" (nothing rewritten); a different one is refused, not resumed into.
   */
  @Test
  void theSameConversionSpelledOtherwiseResumesAsOneAndADifferentOneIsRefused() throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path out = work.resolve("out");
    Checkpoints.Run first = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", out.toString(),
        "--target-tensor-parallel-size", "2", "--mtp-num-layers", "1");
    assertEquals(0, first.exit, first.toString());
    Map<String, FileTime> before = mtimes(out);

    Checkpoints.Run again = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", out.toString(),
        "--resume", "--target-tensor-parallel-size", "2", "--target-pipeline-parallel-size", "1",
        "--target-expert-parallel-size", "1", "--num-layers", "4", "--num-nextn-predict-layers", "1");
    assertEquals(0, again.exit, again.toString());
    assertTrue(again.out.contains(out + " already holds this conversion, complete"), again.out);
    assertFalse(again.out.contains("wrote "), "nothing was written: " + again.out);
    assertEquals(before, mtimes(out), "no file was rewritten");

    Checkpoints.Run other = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", out.toString(),
        "--resume", "--target-tensor-parallel-size", "1", "--mtp-num-layers", "1");
    assertEquals(1, other.exit, other.toString());
    assertTrue(other.err.contains("--save-dir " + out + " holds the output of another conversion")
        && other.err.contains("pass --overwrite to replace it"), other.err);
    assertEquals(before, mtimes(out), "nothing was touched");
  }

  private static Map<String, FileTime> mtimes(Path dir) throws Exception {
    Map<String, FileTime> out = new TreeMap<>();
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path f : s.filter(Files::isRegularFile).toList()) {
        out.put(dir.relativize(f).toString(), Files.getLastModifiedTime(f));
      }
    }
    return out;
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
