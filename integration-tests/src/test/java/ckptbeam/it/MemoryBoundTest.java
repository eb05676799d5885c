package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Fails if a conversion holds a whole large tensor in memory: the model's embedding, lm_head and grouped-GEMM
 * {@code weight1} are 160 MiB each, and both directions run with a 128 MB heap.
 */
class MemoryBoundTest {
  @TempDir Path work;

  @Test
  void tensorsLargerThanTheHeapConvertBothWays() throws Exception {
    String launcher = Torch.repo().resolve("bin/ckptbeam").toString();
    String heap = "-Xmx128m";
    Torch.Result made = Torch.run(List.of(launcher, "make-tiny-model", "--out", "hf", "--vocab-size", "81920",
        "--hidden-size", "1024", "--experts", "32", "--moe-intermediate-size", "1280", "--intermediate-size", "1024",
        "--layers", "2", "--first-k-dense", "1", "--mtp-layers", "0", "--heads", "8", "--q-lora-rank", "64",
        "--kv-lora-rank", "32", "--qk-nope-head-dim", "16", "--qk-rope-head-dim", "8", "--v-head-dim", "16",
        "--shards", "2"), work, heap);
    assertEquals(0, made.exit, made.output);
    assertTrue(Files.size(work.resolve("hf/model-00001-of-000002.safetensors")) > 160L << 20);

    Torch.Result fwd = Torch.run(List.of(launcher, "hf2mcore", "--load-dir", "hf", "--save-dir", "mc",
        "--moe-grouped-gemm"), work, heap);
    assertEquals(0, fwd.exit, fwd.output);
    Torch.Result back = Torch.run(List.of(launcher, "mcore2hf", "--load-dir", "mc", "--save-dir", "back",
        "--moe-grouped-gemm"), work, heap);
    assertEquals(0, back.exit, back.output);
    String report = RoundTripTest.roundTrip(work.resolve("hf"), work.resolve("back"), "");
    assertTrue(report.startsWith("OK "), report);
  }
}
