package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The readiness rules on a real tiny checkpoint, taken apart file by file. */
class CheckpointReadinessTest {
  @TempDir Path work;

  private static final String SHARD = "model-00002-of-000003.safetensors";

  private CheckpointReadiness hf() {
    return new CheckpointReadiness(ConversionDirection.HF2MCORE, new String[0]);
  }

  @Test
  void hfIsReadyOnlyWhenConfigIndexAndEveryFullShardArePresent() throws Exception {
    Path ck = work.resolve("hf");
    TinyModel.write(ck, TinyModel.DEFAULTS);
    String dir = ck.toString();
    assertNull(hf().missing(dir));

    byte[] shard = Files.readAllBytes(ck.resolve(SHARD));
    Files.write(ck.resolve(SHARD), Arrays.copyOf(shard, shard.length - 1));
    assertTrue(hf().missing(dir).startsWith(SHARD + " (" + (shard.length - 1) + " of " + shard.length), hf().missing(dir));
    Files.write(ck.resolve(SHARD), Arrays.copyOf(shard, 20));
    assertTrue(hf().missing(dir).startsWith(SHARD), "a header cut short is incomplete");
    Files.write(ck.resolve(SHARD), Arrays.copyOf(shard, 3));
    assertTrue(hf().missing(dir).startsWith(SHARD));
    Files.delete(ck.resolve(SHARD));
    assertEquals(SHARD, hf().missing(dir));
    Files.write(ck.resolve(SHARD), shard);
    assertNull(hf().missing(dir));

    byte[] index = Files.readAllBytes(ck.resolve("model.safetensors.index.json"));
    Files.write(ck.resolve("model.safetensors.index.json"), Arrays.copyOf(index, index.length / 2));
    assertTrue(hf().missing(dir).contains("not complete JSON"), hf().missing(dir));
    Files.write(ck.resolve("model.safetensors.index.json"), index);
    Files.delete(ck.resolve("config.json"));
    assertEquals("config.json", hf().missing(dir));
  }

  @Test
  void aCompleteButMalformedShardIsReadySoThatItsConversionReportsIt() throws Exception {
    Path ck = work.resolve("hf");
    TinyModel.write(ck, TinyModel.DEFAULTS);
    byte[] shard = Files.readAllBytes(ck.resolve(SHARD));
    shard[10] = '!'; // the header's JSON is broken, the length prefix intact
    Files.write(ck.resolve(SHARD), shard);
    assertNull(hf().missing(ck.toString()));
  }

  @Test
  void mcoreIsReadyWhenTheTrackerAndEveryRankFileOfTheLayoutAreComplete() throws Exception {
    Path hfDir = work.resolve("hf");
    TinyModel.write(hfDir, TinyModel.DEFAULTS);
    Path mc = work.resolve("mc");
    assertEquals(0, Main.run(new String[] {"hf2mcore", "--load-dir", hfDir.toString(), "--save-dir", mc.toString(),
        "--target-tensor-parallel-size", "2"}, quiet(), quiet()));
    CheckpointReadiness tp2 = new CheckpointReadiness(ConversionDirection.MCORE2HF,
        new String[] {"--source-tensor-parallel-size=2"});
    String dir = mc.toString();
    assertNull(tp2.missing(dir));
    CheckpointReadiness tp4 = new CheckpointReadiness(ConversionDirection.MCORE2HF,
        new String[] {"--source-tensor-parallel-size=4"});
    assertTrue(tp4.missing(dir).contains("mp_rank_02"), "the layout decides which rank files must exist");

    Path rank = mc.resolve("iter_0000001/mp_rank_01/model_optim_rng.pt");
    byte[] bytes = Files.readAllBytes(rank);
    Files.write(rank, Arrays.copyOf(bytes, bytes.length - 10));
    assertTrue(tp2.missing(dir).contains("no zip directory"), tp2.missing(dir));
    Files.write(rank, bytes);
    // a V3 checkpoint's config.json may come after its rank files: without it (nor V4 args to rebuild it from), wait
    Path config = mc.resolve("config.json");
    byte[] configBytes = Files.readAllBytes(config);
    Files.delete(config);
    assertEquals("config.json", tp2.missing(dir));
    Files.write(config, configBytes);
    assertNull(tp2.missing(dir));
    Files.delete(mc.resolve("latest_checkpointed_iteration.txt"));
    assertEquals("latest_checkpointed_iteration.txt", tp2.missing(dir));
  }

  private static PrintStream quiet() {
    return new PrintStream(new ByteArrayOutputStream());
  }
}
