package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The scripts under examples/ run as a user runs them (bash, the launcher), on a tiny model with DeepSeek-V3's layer
 * structure (61 layers, 3 dense, 1 MTP, 32 experts) so that the shipped layouts apply unchanged: the hf2mcore script
 * writes its 512 rank files, the mcore2hf script brings them back bit-exact, and the merge-LoRA script's layout
 * checks out in a dry run against a checkpoint written with it.
 */
class ExamplesTest {
  @TempDir static Path work;
  static Path hf;

  @BeforeAll
  static void model() {
    hf = Checkpoints.tinyModel(work.resolve("hf"), "--layers", "61", "--first-k-dense", "3", "--experts", "32",
        "--hidden-size", "32", "--vocab-size", "64", "--intermediate-size", "64", "--moe-intermediate-size", "16",
        "--q-lora-rank", "16", "--kv-lora-rank", "8", "--qk-nope-head-dim", "8", "--qk-rope-head-dim", "4",
        "--v-head-dim", "8", "--shards", "8");
  }

  /** Runs an example script with the given environment; returns its exit code and output. */
  static Checkpoints.Run script(String path, Map<String, String> env, String... args) throws Exception {
    List<String> cmd = new ArrayList<>(List.of("bash", Torch.repo().resolve(path).toString()));
    cmd.addAll(List.of(args));
    ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(false);
    pb.environment().putAll(env);
    Process p = pb.start();
    byte[] err = new byte[0];
    byte[] out = p.getInputStream().readAllBytes();
    err = p.getErrorStream().readAllBytes();
    assertTrue(p.waitFor(10, TimeUnit.MINUTES), path + " finished");
    return new Checkpoints.Run(p.exitValue(), new String(out, StandardCharsets.UTF_8),
        new String(err, StandardCharsets.UTF_8));
  }

  @Test
  void theShippedHf2McoreAndMcore2HfScriptsRoundTripBitExact() throws Exception {
    Path mcore = work.resolve("mcore");
    Checkpoints.Run dry = script("examples/deepseek3/ckpt_convert_deepseek3_hf2mcore.sh",
        Map.of("HF_DIR", hf.toString(), "MCORE_DIR", mcore.toString()), "--dry-run");
    assertEquals(0, dry.exit, dry.toString());
    assertTrue(dry.out.contains("total: 512 rank file(s)"), dry.out);

    Checkpoints.Run fwd = script("examples/deepseek3/ckpt_convert_deepseek3_hf2mcore.sh",
        Map.of("HF_DIR", hf.toString(), "MCORE_DIR", mcore.toString()), "--quiet");
    assertEquals(0, fwd.exit, fwd.toString());
    assertEquals("1", Files.readString(mcore.resolve("latest_checkpointed_iteration.txt")));
    assertTrue(Files.exists(mcore.resolve("iter_0000001/mp_rank_01_007_031/model_optim_rng.pt")));

    Path back = work.resolve("back");
    Checkpoints.Run rev = script("examples/deepseek3/ckpt_convert_deepseek3_mcore2hf.sh",
        Map.of("MCORE_DIR", mcore.toString(), "HF_DIR", back.toString()), "--quiet");
    assertEquals(0, rev.exit, rev.toString());
    String report = RoundTripTest.roundTrip(hf, back, "");
    assertTrue(report.startsWith("OK "), report);
  }

  /**
   * MindSpeed's shipped DeepSeek-V4-Flash scripts' layout on a tiny Flash-shaped release (43 layers, 32 experts, FP8
   * and MXFP4): the dequant script's bf16 copy, hf2mcore from the release (128 rank files with args), and the
   * mcore2hf script back, bit-exact against the bf16 copy.
   */
  @Test
  void theShippedDeepSeekV4FlashScriptsRoundTripTheReleaseBitExact() throws Exception {
    Path release = Checkpoints.tinyModel(work.resolve("v4-flash"), "--v4", "--fp8", "--layers", "43", "--experts",
        "32", "--hash-layers", "3", "--hidden-size", "32", "--vocab-size", "64", "--moe-intermediate-size", "32",
        "--heads", "4", "--head-dim", "16", "--q-lora-rank", "16", "--o-lora-rank", "8", "--o-groups", "2",
        "--hc-mult", "2", "--index-heads", "2", "--index-head-dim", "8", "--qk-rope-head-dim", "4", "--shards", "8");
    Path bf16 = work.resolve("v4-flash-bf16");
    Checkpoints.Run dq = script("examples/deepseek4/ckpt_dequant_deepseek4_fp8_to_bf16.sh",
        Map.of("FP8_DIR", release.toString(), "BF16_DIR", bf16.toString()), "--quiet");
    assertEquals(0, dq.exit, dq.toString());
    Path mcore = work.resolve("v4-flash-mcore");
    Checkpoints.Run fwd = script("examples/deepseek4/ckpt_convert_deepseek4_flash_hf2mcore.sh",
        Map.of("HF_DIR", release.toString(), "MCORE_DIR", mcore.toString()), "--quiet");
    assertEquals(0, fwd.exit, fwd.toString());
    assertTrue(Files.exists(mcore.resolve("iter_0000001/mp_rank_00_003_031/model_optim_rng.pt")));
    Path back = work.resolve("v4-flash-back");
    Checkpoints.Run rev = script("examples/deepseek4/ckpt_convert_deepseek4_flash_mcore2hf.sh",
        Map.of("MCORE_DIR", mcore.toString(), "HF_DIR", back.toString()), "--quiet");
    assertEquals(0, rev.exit, rev.toString());
    String report = RoundTripTest.roundTrip(bf16, back, "");
    assertTrue(report.startsWith("OK "), report);
  }

  @Test
  void theShippedMergeLoraScriptsLayoutChecksOut() throws Exception {
    Path mcore = work.resolve("lora-base");
    Checkpoints.Run fwd = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--moe-grouped-gemm", "--target-pipeline-parallel-size", "4", "--target-expert-parallel-size", "8",
        "--num-layers", "61", "--first-k-dense-replace", "3", "--num-layer-list", "16,15,15,15", "--quiet");
    assertEquals(0, fwd.exit, fwd.toString());
    Checkpoints.Run dry = script("examples/deepseek3/ckpt_convert_deepseek3_merge_lora2hf.sh",
        Map.of("MCORE_DIR", mcore.toString(), "LORA_DIR", "", "HF_DIR", work.resolve("merged").toString()),
        "--dry-run");
    assertEquals(0, dry.exit, dry.toString());
    assertTrue(dry.out.contains("reads 32 rank file(s) of iter_0000001"), dry.out);
    assertTrue(dry.out.contains("total: 61 HF file(s)"), dry.out);
  }

  @Test
  void theDataflowExampleHasOnlyFlagsTheCommandAndDataflowKnow() throws Exception {
    // No project or bucket is reachable here: a stand-in launcher records the command line, which then runs as a
    // dry run on the tiny model (same layout; every flag, Dataflow's included, is parsed and validated).
    Path args = work.resolve("dataflow-args");
    Path stub = work.resolve("record-args.sh");
    Files.writeString(stub, "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > " + args + "\n");
    stub.toFile().setExecutable(true);
    Checkpoints.Run recorded = script("examples/runners/dataflow.sh", Map.of("CKPTBEAM", stub.toString(), "PROJECT",
        "example-project", "REGION", "europe-west4", "BUCKET", "example-bucket"));
    assertEquals(0, recorded.exit, recorded.toString());
    List<String> argv = new ArrayList<>();
    for (String a : Files.readAllLines(args)) {
      argv.add(a.replace("gs://example-bucket/DeepSeek-V3-bf16", hf.toString())
          .replace("gs://example-bucket/deepseek3-mcore", work.resolve("df-out").toString()));
    }
    assertTrue(argv.contains("--runner=DataflowRunner"), argv.toString());
    argv.add("--dry-run");
    Checkpoints.Run dry = Checkpoints.cli(argv.toArray(new String[0]));
    assertEquals(0, dry.exit, dry.toString());
    assertTrue(dry.out.contains("total: 512 rank file(s)"), dry.out);
  }

  @Test
  void theFlinkAndWatchExamplesConvert() throws Exception {
    Path out = work.resolve("flink-out");
    Checkpoints.Run flink = script("examples/runners/flink-cluster.sh", Map.of("FLINK_MASTER", "[local]", "HF_DIR",
        hf.toString(), "MCORE_DIR", out.toString()), "--target-expert-parallel-size", "4", "--quiet");
    assertEquals(0, flink.exit, flink.toString());
    assertEquals("1", Files.readString(out.resolve("latest_checkpointed_iteration.txt")));

    Path incoming = Files.createDirectories(work.resolve("incoming"));
    WatchTest.copy(hf, incoming.resolve("ck"), 0);
    Checkpoints.Run watch = script("examples/runners/watch.sh", Map.of("INCOMING", incoming.toString(), "SAVE_ROOT",
        work.resolve("converted").toString()), "--stop-after-idle", "5");
    assertEquals(0, watch.exit, watch.toString());
    assertTrue(watch.out.contains("1 checkpoint(s) seen, 1 converted"), watch.out);
    assertTrue(Files.exists(work.resolve("converted/ck/iter_0000001/mp_rank_01_007_031/model_optim_rng.pt")));
  }
}
