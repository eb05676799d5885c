package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** A message about a layout flag names the flag the user typed: --target-… for hf2mcore, --source-… for mcore2hf. */
class FlagMessagesTest {
  @TempDir Path work;

  private String error(String... argv) {
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit = Main.run(argv, new PrintStream(new ByteArrayOutputStream()), new PrintStream(err, true,
        StandardCharsets.UTF_8));
    assertEquals(2, exit, "bad usage");
    return err.toString(StandardCharsets.UTF_8).strip();
  }

  @Test
  void eachDirectionNamesItsOwnSide() throws Exception {
    Path hf = work.resolve("hf");
    TinyModel.write(hf, TinyModel.DEFAULTS);
    assertEquals("ckptbeam: error: --target-tensor-parallel-size must be positive, got 0", error("hf2mcore",
        "--load-dir", hf.toString(), "--save-dir", work.resolve("m").toString(), "--target-tensor-parallel-size", "0"));
    assertEquals(0, Main.run(new String[] {"hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("m").toString()}, new PrintStream(new ByteArrayOutputStream()), System.err));
    assertEquals("ckptbeam: error: --source-tensor-parallel-size must be positive, got 0", error("mcore2hf",
        "--load-dir", work.resolve("m").toString(), "--save-dir", work.resolve("h").toString(),
        "--source-tensor-parallel-size", "0"));
    assertEquals("ckptbeam: error: --num-layers 3 is not divisible by --source-pipeline-parallel-size 2", error(
        "mcore2hf", "--load-dir", work.resolve("m").toString(), "--save-dir", work.resolve("h").toString(),
        "--source-pipeline-parallel-size", "2", "--num-layers", "3"));
    // mcore2mcore: each per-side flag carries its side; the layout that failed is the one named
    assertEquals("ckptbeam: error: --target-num-layers 5 is not divisible by --target-pipeline-parallel-size 2",
        error("mcore2mcore", "--load-dir", work.resolve("m").toString(), "--save-dir", work.resolve("h").toString(),
            "--target-pipeline-parallel-size", "2", "--target-num-layers", "5"));
    assertEquals("ckptbeam: error: --source-num-layer-list has 2 entries but --source-pipeline-parallel-size is 1",
        error("mcore2mcore", "--load-dir", work.resolve("m").toString(), "--save-dir", work.resolve("h").toString(),
            "--source-num-layer-list", "2,2"));
  }

  /** MindSpeed's direction flags must name the command's direction, in batch and in watch (checked at start). */
  @Test
  void directionFlagsAreCheckedByEveryCommandThatTakesThem() throws Exception {
    Path hf = work.resolve("hf");
    TinyModel.write(hf, TinyModel.DEFAULTS);
    String want = "ckptbeam: error: --load-model-type mg does not match this command, whose input is HuggingFace (hf)";
    assertEquals(want, error("hf2mcore", "--load-dir", hf.toString(), "--save-dir", work.resolve("m").toString(),
        "--load-model-type", "mg"));
    assertEquals(want, error("watch", "--direction", "hf2mcore", "--input-pattern", work.resolve("in/*").toString(),
        "--save-root", work.resolve("out").toString(), "--load-model-type", "mg"));
  }

  /** MindSpeed's --transformer-impl and --save-layer-by-layer run unchanged: accepted, ignored, and said so. */
  @Test
  void mindSpeedsIgnoredFlagsAreAcceptedWithANote() throws Exception {
    Path hf = work.resolve("hf-ignored");
    TinyModel.write(hf, TinyModel.DEFAULTS);
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    PrintStream out = new PrintStream(log, true, StandardCharsets.UTF_8);
    assertEquals(0, Main.run(new String[] {"hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("m-ignored").toString(), "--transformer-impl", "local", "--save-layer-by-layer", "--quiet"}, out,
        out));
    String said = log.toString(StandardCharsets.UTF_8);
    for (String flag : new String[] {"--transformer-impl", "--save-layer-by-layer"}) {
      org.junit.jupiter.api.Assertions.assertTrue(said.contains(flag + " is accepted for MindSpeed's scripts and "
          + "ignored"), said);
    }
  }
}
