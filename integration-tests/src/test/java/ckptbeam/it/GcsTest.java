package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.cloud.storage.BlobInfo;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@code --load-dir gs://…} and {@code --save-dir gs://…} against a real Cloud Storage emulator process: gs:// to
 * gs:// and back, byte for byte the DirectRunner's local output; a failed run leaves no marker in the bucket; the
 * save-dir rule; and the same conversions through a store that fails some requests ({@link FaultyStoreProxy} in front
 * of the emulator: 503s, connections closed before an answer, response bodies cut short; seeded, so every run meets
 * the same faults): byte for byte the fault-free local conversion, while an outage that outlasts the retries fails
 * the run with a message naming the object, leaving no tracker or index.
 */
class GcsTest {
  private static final String BUCKET = "ckptbeam-test";
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
  void gsToGsAndBackIsBitExactAndEqualsTheLocalConversion() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "round/hf");
    String reverse = LAYOUT.replace("--target-", "--source-");

    Path localMcore = run("hf2mcore", hf.toString(), work.resolve("local-mcore").toString(), LAYOUT, List.of());
    run("hf2mcore", hfGs, "gs://" + BUCKET + "/round/mcore", LAYOUT, gcs.beamFlags());
    Path gotMcore = work.resolve("got-mcore");
    List<String> mcoreObjects = gcs.download(BUCKET, "round/mcore", gotMcore);
    assertTrue(mcoreObjects.contains("latest_checkpointed_iteration.txt"), mcoreObjects.toString());
    Checkpoints.assertSameFiles(localMcore, gotMcore, false);

    Path localHf = run("mcore2hf", localMcore.toString(), work.resolve("local-back").toString(), reverse, List.of());
    run("mcore2hf", "gs://" + BUCKET + "/round/mcore", "gs://" + BUCKET + "/round/back", reverse, gcs.beamFlags());
    Path gotHf = work.resolve("got-back");
    gcs.download(BUCKET, "round/back", gotHf);
    Checkpoints.assertSameFiles(localHf, gotHf, false);
    String report = RoundTripTest.roundTrip(hf, gotHf, "");
    assertTrue(report.startsWith("OK "), report);
  }

  @Test
  void aFailedConversionLeavesNoMarkerInTheBucket() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "bad/hf");
    // one shard truncated in the bucket: the conversion fails before its marker
    String shard = "model-00002-of-000003.safetensors";
    byte[] bytes = Files.readAllBytes(hf.resolve(shard));
    gcs.storage.create(BlobInfo.newBuilder(BUCKET, "bad/hf/" + shard).build(),
        Arrays.copyOf(bytes, bytes.length - 100));
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hfGs, "--save-dir",
        "gs://" + BUCKET + "/bad/mcore"));
    args.addAll(gcs.beamFlags());
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(1, r.exit, r.toString());
    assertTrue(r.err.contains(shard), r.err);
    assertFalse(gcs.storage.get(BUCKET, "bad/mcore/latest_checkpointed_iteration.txt") != null,
        "no tracker after a failed run");
  }

  /** One save-dir rule for every store: a gs:// prefix that holds anything is refused unless --overwrite/--resume. */
  @Test
  void aNonEmptyGsSaveDirIsRefusedAndResumeWorksThere() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "rule/hf");
    String save = "gs://" + BUCKET + "/rule/mcore";
    // part of an earlier output: one rank file, no marker
    gcs.storage.create(BlobInfo.newBuilder(BUCKET, "rule/mcore/iter_0000001/mp_rank_00/model_optim_rng.pt").build(),
        new byte[] {1, 2, 3});
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hfGs, "--save-dir", save));
    args.addAll(gcs.beamFlags());
    Checkpoints.Run refused = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(1, refused.exit, refused.toString());
    assertTrue(refused.err.contains("--save-dir " + save + " is not empty (it holds 1 file(s), e.g. "
        + "iter_0000001/mp_rank_00/model_optim_rng.pt); pass --overwrite"), refused.err);
    assertEquals(3, gcs.storage.get(BUCKET, "rule/mcore/iter_0000001/mp_rank_00/model_optim_rng.pt").getSize(),
        "nothing was touched");

    List<String> overwrite = new ArrayList<>(args);
    overwrite.add("--overwrite");
    assertEquals(0, Checkpoints.cli(overwrite.toArray(new String[0])).exit);
    List<String> resume = new ArrayList<>(args);
    resume.add("--resume");
    Checkpoints.Run again = Checkpoints.cli(resume.toArray(new String[0]));
    assertEquals(0, again.exit, again.toString());
    assertTrue(again.out.contains("already holds this conversion, complete"), again.out);
  }

  @Test
  void bothDirectionsThroughAFlakyStoreEqualTheFaultFreeConversion() throws Exception {
    String hfGs = gcs.upload(hf, BUCKET, "flaky/hf");
    String reverse = LAYOUT.replace("--target-", "--source-");
    Path localMcore = work.resolve("flaky-local-mcore");
    Path localHf = work.resolve("flaky-local-hf");
    run("hf2mcore", hf.toString(), localMcore.toString(), LAYOUT, List.of());
    run("mcore2hf", localMcore.toString(), localHf.toString(), reverse, List.of());

    try (FaultyStoreProxy proxy = new FaultyStoreProxy(gcs.port, 20261206L, 0.08, 2)) {
      run("hf2mcore", hfGs, "gs://" + BUCKET + "/flaky/mcore", LAYOUT, proxy.beamFlags());
      int afterForward = proxy.injected();
      System.out.println("flaky store, hf2mcore: " + proxy);
      Path gotMcore = work.resolve("flaky-got-mcore");
      gcs.download(BUCKET, "flaky/mcore", gotMcore);
      Checkpoints.assertSameFiles(localMcore, gotMcore, false);

      run("mcore2hf", "gs://" + BUCKET + "/flaky/mcore", "gs://" + BUCKET + "/flaky/back", reverse,
          proxy.beamFlags());
      System.out.println("flaky store, both directions: " + proxy);
      Path gotHf = work.resolve("flaky-got-hf");
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

  private static Path run(String command, String in, String out, String layout, List<String> beamFlags) {
    List<String> args = new ArrayList<>(List.of(command, "--load-dir", in, "--save-dir", out));
    args.addAll(List.of(layout.split(" ")));
    args.addAll(beamFlags);
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    return out.startsWith("gs://") ? null : Path.of(out);
  }
}
