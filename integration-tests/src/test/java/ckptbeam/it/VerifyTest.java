package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import java.io.RandomAccessFile;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** verify: a manifest check and a layout proof that both catch one flipped byte, and name where it is. */
class VerifyTest {
  @TempDir Path work;

  @Test
  void oneFlippedByteIsFoundAndNamed() throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mc = work.resolve("mc");
    String[] layout = {"--moe-grouped-gemm", "--mtp-num-layers", "1", "--target-tensor-parallel-size", "2"};
    String[] fwd = new String[5 + layout.length];
    System.arraycopy(new String[] {"hf2mcore", "--load-dir", hf.toString(), "--save-dir", mc.toString()}, 0, fwd, 0, 5);
    System.arraycopy(layout, 0, fwd, 5, layout.length);
    assertEquals(0, Checkpoints.cli(fwd).exit);
    String[] proof = {"verify", "--hf", hf.toString(), "--mcore", mc.toString(), "--moe-grouped-gemm",
        "--mtp-num-layers", "1", "--source-tensor-parallel-size", "2"};
    Checkpoints.Run ok = Checkpoints.cli(proof);
    assertEquals(0, ok.exit, ok.toString());
    assertTrue(ok.out.contains("2 rank file(s), ") && ok.out.contains("tensors equal the HF input"), ok.out);
    assertEquals(0, Checkpoints.cli("verify", "--load-dir", mc.toString()).exit);

    // flip one byte inside decoder.layers.1.mlp.experts.weight2 of tp rank 1
    Path rank = mc.resolve("iter_0000001/mp_rank_01/model_optim_rng.pt");
    TorchCheckpointReader r = TorchCheckpointReader.open(rank.toString());
    String key = "decoder.layers.1.mlp.experts.weight2";
    PickleReader.TorchTensor t = r.tensors("model").get(key);
    TensorLocation loc = r.locate(key, t);
    try (RandomAccessFile f = new RandomAccessFile(rank.toFile(), "rw")) {
      f.seek(loc.offset() + 10);
      int b = f.read();
      f.seek(loc.offset() + 10);
      f.write(b ^ 0x40);
    }
    Checkpoints.Run manifest = Checkpoints.cli("verify", "--load-dir", mc.toString());
    assertEquals(1, manifest.exit);
    assertTrue(manifest.out.contains("mp_rank_01/model_optim_rng.pt: SHA-256 differs"), manifest.out);
    Checkpoints.Run bad = Checkpoints.cli(proof);
    assertEquals(1, bad.exit);
    assertTrue(bad.out.contains("mp_rank_01/model/" + key + ": differs from the HF input first at element 5"),
        bad.out);
    // the proof is a pipeline: on Flink, two rank files checked in parallel, the same verdict
    String[] onFlink = java.util.Arrays.copyOf(proof, proof.length + 3);
    onFlink[proof.length] = "--runner=FlinkRunner";
    onFlink[proof.length + 1] = "--flinkMaster=[local]";
    onFlink[proof.length + 2] = "--parallelism=2";
    Checkpoints.Run flink = Checkpoints.cli(onFlink);
    assertEquals(1, flink.exit, flink.toString());
    assertEquals(verdict(bad.out), verdict(flink.out));
  }

  /** The verdict's lines, without anything a runner may print. */
  private static String verdict(String out) {
    return out.lines().filter(l -> l.startsWith("DIFFERENCE ") || l.startsWith("verification ")
        || l.startsWith("verified: ")).collect(java.util.stream.Collectors.joining("\n"));
  }

  @Test
  void checkpointContentTheManifestDoesNotListFailsVerification() throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mc = work.resolve("mc");
    assertEquals(0, Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mc.toString(),
        "--target-tensor-parallel-size", "2").exit);
    // files that are not checkpoint content are the user's business
    Files.writeString(mc.resolve("NOTES.txt"), "trained on 2026-12-06");
    assertEquals(0, Checkpoints.cli("verify", "--load-dir", mc.toString()).exit);
    // a third TP rank (it changes the layout a trainer sees) and an HF index (another reader's view) do not pass
    Files.createDirectories(mc.resolve("iter_0000001/mp_rank_02"));
    Files.copy(mc.resolve("iter_0000001/mp_rank_01/model_optim_rng.pt"),
        mc.resolve("iter_0000001/mp_rank_02/model_optim_rng.pt"));
    Files.copy(hf.resolve("model.safetensors.index.json"), mc.resolve("model.safetensors.index.json"));
    Checkpoints.Run r = Checkpoints.cli("verify", "--load-dir", mc.toString());
    assertEquals(1, r.exit, r.toString());
    assertTrue(r.out.contains("DIFFERENCE iter_0000001/mp_rank_02/model_optim_rng.pt: not in the manifest "
        + "(checkpoint content this conversion did not write)"), r.out);
    assertTrue(r.out.contains("DIFFERENCE model.safetensors.index.json: not in the manifest"), r.out);
    assertTrue(r.out.contains("verification FAILED: 2 problem(s)"), r.out);
  }
}
