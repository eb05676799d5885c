package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Conversions through a store that fails some requests ({@link FaultyStoreProxy} in front of the emulator: 503s,
 * connections closed before an answer, response bodies cut short; seeded, so every run meets the same faults):
 * gs:// to gs:// in both directions is byte for byte the fault-free local conversion, and an outage that outlasts the
 * retries fails the run with a message naming the object, leaving no tracker or index.
 */
class GcsFaultTest {
  private static final String BUCKET = "ckptbeam-faults";
  private static final String LAYOUT = "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 "
      + "--moe-grouped-gemm --mtp-num-layers 1";

  @TempDir static Path work;
  static GcsEmulator gcs;
  static Path hf;

  @BeforeAll
  static void start() throws Exception {
    gcs = GcsEmulator.start(work.resolve("emulator"));
    hf = Checkpoints.tinyModel(work.resolve("hf"));
  }

  @AfterAll
  static void stop() throws Exception {
    gcs.close();
  }

  @Test
  void bothDirectionsThroughAFlakyStoreEqualTheFaultFreeConversion() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "flaky/hf");
    String reverse = LAYOUT.replace("--target-", "--source-");
    Path localMcore = work.resolve("local-mcore");
    Path localHf = work.resolve("local-hf");
    run("hf2mcore", hf.toString(), localMcore.toString(), LAYOUT, List.of());
    run("mcore2hf", localMcore.toString(), localHf.toString(), reverse, List.of());

    try (FaultyStoreProxy proxy = new FaultyStoreProxy(gcs.port, 20261206L, 0.08, 2)) {
      run("hf2mcore", hfGs, "gs://" + BUCKET + "/flaky/mcore", LAYOUT, proxy.beamFlags());
      int afterForward = proxy.injected();
      System.out.println("GcsFaultTest hf2mcore: " + proxy);
      Path gotMcore = work.resolve("got-mcore");
      gcs.download(BUCKET, "flaky/mcore", gotMcore);
      Checkpoints.assertSameFiles(localMcore, gotMcore, false);

      run("mcore2hf", "gs://" + BUCKET + "/flaky/mcore", "gs://" + BUCKET + "/flaky/back", reverse,
          proxy.beamFlags());
      System.out.println("GcsFaultTest both: " + proxy);
      Path gotHf = work.resolve("got-hf");
      gcs.download(BUCKET, "flaky/back", gotHf);
      Checkpoints.assertSameFiles(localHf, gotHf, false);
      assertTrue(afterForward > 0 && proxy.injected() > afterForward, "faults were injected in both runs: " + proxy);
      for (FaultyStoreProxy.Fault f : FaultyStoreProxy.Fault.values()) {
        assertTrue(proxy.injected(f) > 0, "every kind of fault was injected: " + proxy);
      }
    }
  }

  @Test
  void anOutageThatOutlastsTheRetriesFailsCleanly() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "outage/hf");
    // every request that names this rank file (the upload's start) answers 503: its writer fails after the
    // retries, and the conversion with it
    String rankFile = "mp_rank_01_001";
    String before = System.getProperty("ckptbeam.storeAttempts");
    System.setProperty("ckptbeam.storeAttempts", "2");
    try (FaultyStoreProxy proxy = new FaultyStoreProxy(gcs.port, 1L, 0, 0)) {
      proxy.outage(rankFile);
      List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hfGs, "--save-dir",
          "gs://" + BUCKET + "/outage/mcore"));
      args.addAll(List.of(LAYOUT.split(" ")));
      args.addAll(proxy.beamFlags());
      Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
      assertEquals(1, r.exit, r.toString());
      assertTrue(r.err.contains(rankFile) && r.err.contains("transient error"), r.err);
      assertTrue(!r.err.contains("does not exist"), "an outage is not a missing file: " + r.err);
    } finally {
      if (before == null) {
        System.clearProperty("ckptbeam.storeAttempts");
      } else {
        System.setProperty("ckptbeam.storeAttempts", before);
      }
    }
    assertNull(gcs.storage.get(BUCKET, "outage/mcore/latest_checkpointed_iteration.txt"), "no tracker");
    assertNull(gcs.storage.get(BUCKET, "outage/mcore/ckptbeam-manifest.json"), "no manifest");
  }

  private static void run(String command, String in, String out, String layout, List<String> beamFlags) {
    List<String> args = new ArrayList<>(List.of(command, "--load-dir", in, "--save-dir", out));
    args.addAll(List.of(layout.split(" ")));
    args.addAll(beamFlags);
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
  }
}
