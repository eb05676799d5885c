package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.tensor.TensorLocation;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** {@code bin/ckptbeam} as a user runs it: from another folder, with relative paths and JAVA_OPTS. */
class LauncherTest {
  @TempDir Path work;

  @Test
  void runsFromAnyWorkingDirectoryWithRelativePathsAndJavaOpts() throws Exception {
    String launcher = Torch.repo().resolve("bin/ckptbeam").toString();
    Torch.Result made = Torch.run(List.of(launcher, "make-tiny-model", "--out", "hf"), work, "-Xmx256m");
    assertEquals(0, made.exit, made.output);
    Torch.Result conv = Torch.run(List.of(launcher, "hf2mcore", "--load-dir", "hf", "--save-dir", "out/mc",
        "--moe-grouped-gemm"), work, "-Xmx256m");
    assertEquals(0, conv.exit, conv.output);
    assertTrue(Files.exists(work.resolve("out/mc/iter_0000001/mp_rank_00/model_optim_rng.pt")));
    Torch.checkMcore(work.resolve("hf"), work.resolve("out/mc"), "--grouped-gemm");

    // JAVA_OPTS reaches the JVM: a heap too small to start is fatal
    Torch.Result tiny = Torch.run(List.of(launcher, "help"), work, "-Xmx1m");
    assertTrue(tiny.exit != 0, tiny.output);
  }

  /**
   * The launcher starts the JVM with the serial collector, unless JAVA_OPTS names a collector: two would be refused
   * by the JVM ("multiple garbage collectors selected").
   */
  @Test
  void theLaunchersCollectorGivesWayToOneInJavaOpts() throws Exception {
    String launcher = Torch.repo().resolve("bin/ckptbeam").toString();
    Torch.Result serial = Torch.run(List.of(launcher, "--version"), work, "-Xlog:gc");
    assertEquals(0, serial.exit, serial.output);
    assertTrue(serial.output.contains("Using Serial"), serial.output);
    Torch.Result g1 = Torch.run(List.of(launcher, "--version"), work, "-XX:+UseG1GC -Xlog:gc");
    assertEquals(0, g1.exit, g1.output);
    assertTrue(g1.output.contains("Using G1"), g1.output);
  }

  @Test
  void demoRuns() throws Exception {
    Torch.Result r = Torch.run(List.of(Torch.repo().resolve("bin/ckptbeam").toString(), "demo", "--out", "d"), work,
        null);
    assertEquals(0, r.exit, r.output);
    assertTrue(r.output.contains("iter_0000001/mp_rank_00/model_optim_rng.pt"), r.output);
    assertTrue(Files.exists(work.resolve("d/mcore/latest_checkpointed_iteration.txt")));
  }

  /**
   * The launcher jar lists only the core and DirectRunner option registrars (the others cost seconds at every start;
   * pipelines/pom.xml): a runner's or Google Cloud's flag must still be known when a command is given one, and a
   * typo still named. Only the launcher shows this: the test classpath lists every registrar.
   */
  private Torch.Result hf2mcoreWith(String out, String... beamFlags) throws Exception {
    String launcher = Torch.repo().resolve("bin/ckptbeam").toString();
    if (!Files.exists(work.resolve("hf"))) {
      Torch.Result made = Torch.run(List.of(launcher, "make-tiny-model", "--out", "hf", "--layers", "2",
          "--mtp-layers", "0"), work, null);
      assertEquals(0, made.exit, made.output);
    }
    List<String> cmd = new ArrayList<>(List.of(launcher, "hf2mcore", "--load-dir", "hf", "--save-dir", out,
        "--mtp-num-layers", "0", "--quiet"));
    cmd.addAll(List.of(beamFlags));
    return Torch.run(cmd, work, null);
  }

  @Test
  void aFlinkJobRunsFromTheLauncher() throws Exception {
    Torch.Result r = hf2mcoreWith("flink", "--runner=FlinkRunner", "--flinkMaster=[local]", "--parallelism=1");
    assertEquals(0, r.exit, r.output);
    assertTrue(Files.exists(work.resolve("flink/latest_checkpointed_iteration.txt")), r.output);
  }

  @Test
  void googleCloudFlagsAreKnownOnTheDirectRunner() throws Exception {
    Torch.Result r = hf2mcoreWith("gcp", "--gcsEndpoint=http://127.0.0.1:9/storage/v1/", "--project=p");
    assertEquals(0, r.exit, r.output);
    assertTrue(Files.exists(work.resolve("gcp/latest_checkpointed_iteration.txt")), r.output);
  }

  @Test
  void aRefusalIsOneSentenceWithoutAStackTrace() throws Exception {
    // a refusal found inside the pipeline, not by the driver's checks: a poisoned FP8 scale
    Path fp8 = Checkpoints.tinyModel(work.resolve("fp8"), "--fp8", "--layers", "2", "--mtp-layers", "0");
    Path poisoned = null;
    for (Path shard : Files.list(fp8).filter(p -> p.toString().endsWith(".safetensors")).toList()) {
      for (TensorLocation t : SafetensorsHeader.read(shard.toString()).tensors()) {
        if (t.name().equals("model.layers.0.self_attn.o_proj.weight_scale_inv")) {
          poisoned = shard;
          try (FileChannel ch = FileChannel.open(shard, StandardOpenOption.WRITE)) {
            ch.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, Float.NaN), t.offset());
          }
        }
      }
    }
    for (List<String> runner : List.of(List.<String>of(), List.of("--runner=FlinkRunner", "--flinkMaster=[local]"))) {
      List<String> cmd = new ArrayList<>(List.of(Torch.repo().resolve("bin/ckptbeam").toString(), "hf2mcore",
          "--load-dir", "fp8", "--save-dir", "refused", "--quiet"));
      cmd.addAll(runner);
      Torch.Result r = Torch.run(cmd, work, null);
      assertEquals(1, r.exit, r.output);
      List<String> lines = r.output.lines().filter(l -> !l.isBlank() && !l.startsWith("note: ")).toList();
      assertEquals(List.of("ckptbeam: error: " + poisoned + ": Fp8Scale: "
          + "scale \"model.layers.0.self_attn.o_proj.weight_scale_inv\" holds NaN at block [0, 0]; a block scale must "
          + "be a finite number"), lines, r.output);
      assertFalse(Files.exists(work.resolve("refused")), r.output);
    }
  }

  @Test
  void flinkRetryFlagsThatABatchJobWouldIgnoreAreRefused() throws Exception {
    Torch.Result r = hf2mcoreWith("retries", "--runner=FlinkRunner", "--flinkMaster=[local]",
        "--numberOfExecutionRetries=3");
    assertEquals(2, r.exit, r.output);
    assertTrue(r.output.contains("--numberOfExecutionRetries has no effect on a batch job in Beam 2.70's "
        + "FlinkRunner"), r.output);
    assertFalse(Files.exists(work.resolve("retries")), r.output);
  }

  @Test
  void aMistypedRunnerFlagIsStillNamed() throws Exception {
    Torch.Result r = hf2mcoreWith("typo", "--runner=FlinkRunner", "--flinkMastr=[local]");
    assertEquals(2, r.exit, r.output);
    assertTrue(r.output.contains("unknown flag --flinkMastr"), r.output);
    assertFalse(Files.exists(work.resolve("typo")), r.output);
  }
}
