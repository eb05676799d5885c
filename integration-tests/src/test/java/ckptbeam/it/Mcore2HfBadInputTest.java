package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.zip.ZipEntry;
import java.util.zip.ZipOutputStream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** mcore2hf refuses what it cannot convert faithfully, with one message naming the file, key or flag. */
class Mcore2HfBadInputTest {
  @TempDir static Path shared;
  @TempDir Path work;
  static Path mcore;

  @BeforeAll
  static void checkpoint() {
    Path hf = Checkpoints.tinyModel(shared.resolve("hf"));
    mcore = shared.resolve("mcore");
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--moe-grouped-gemm", "--mtp-num-layers", "1", "--target-expert-parallel-size", "2");
    assertTrue(r.exit == 0, r.toString());
  }

  private Checkpoints.Run back(Path from, String... flags) {
    List<String> args = new ArrayList<>(List.of("mcore2hf", "--load-dir", from.toString(), "--save-dir",
        work.resolve("out").toString()));
    args.addAll(List.of(flags));
    return Checkpoints.cli(args.toArray(new String[0]));
  }

  private void fails(Checkpoints.Run r, String... fragments) {
    assertNotEquals(0, r.exit, r.toString());
    for (String f : fragments) {
      assertTrue(r.err.contains(f), "expected \"" + f + "\" in: " + r.err);
    }
    assertFalse(Files.exists(work.resolve("out/model.safetensors.index.json")), "index written");
  }

  private Path copy() throws IOException {
    return Checkpoints.copyTree(mcore, work.resolve("mcore"));
  }

  @Test
  void aMissingRankFileIsNamed() throws IOException {
    Path m = copy();
    Files.delete(m.resolve("iter_0000001/mp_rank_00_001/model_optim_rng.pt"));
    fails(back(m, "--moe-grouped-gemm", "--mtp-num-layers", "1", "--source-expert-parallel-size", "2"),
        "mp_rank_00_001/model_optim_rng.pt: rank file missing");
  }

  @Test
  void layoutFlagsThatDoNotMatchTheCheckpoint() {
    fails(back(mcore, "--mtp-num-layers", "1", "--source-expert-parallel-size", "2"),
        "model has no tensor \"", "mlp.experts.local_experts.0.linear_fc1.weight\"");
    fails(back(mcore, "--moe-grouped-gemm", "--source-expert-parallel-size", "2"),
        "tensor(s) the layout would not convert", "\"mtp.", "pass --mtp-num-layers");
    fails(back(mcore, "--moe-grouped-gemm", "--mtp-num-layers", "1"), "rank file missing");
  }

  @Test
  void noConfig() throws IOException {
    Path m = copy();
    Files.delete(m.resolve("config.json"));
    fails(back(m, "--moe-grouped-gemm"), "no --model-config given", "config.json does not exist");
  }

  @Test
  void badTracker() throws IOException {
    Path m = copy();
    Files.writeString(m.resolve("latest_checkpointed_iteration.txt"), "latest");
    fails(back(m, "--moe-grouped-gemm"), "latest_checkpointed_iteration.txt", "\"latest\"");
  }

  @Test
  void aTensorWhoseDtypeDiffersFromItsCopyInAnotherRankFileIsRefusedBeforeWriting() throws Exception {
    Path m = copy();
    // the attention output projection is on both EP ranks; make the second rank's copy float32 with torch
    Path rank = m.resolve("iter_0000001/mp_rank_00_001/model_optim_rng.pt");
    Torch.requireTorch();
    Torch.Result t = Torch.run(List.of(Torch.PYTHON, "-c", "import torch,sys; p=sys.argv[1]; d=torch.load(p); "
        + "m=d['model']; k=[x for x in m if x.endswith('layers.1.self_attention.linear_proj.weight')][0]; "
        + "m[k]=m[k].float(); torch.save(d, p); print(k)", rank.toString()));
    assertEquals(0, t.exit, t.output);
    String key = t.output.strip();
    Checkpoints.Run r = back(m, "--moe-grouped-gemm", "--mtp-num-layers", "1", "--source-expert-parallel-size", "2");
    fails(r, rank + ": model/" + key + " is F32 but the same tensor is BF16 in "
        + m.resolve("iter_0000001/mp_rank_00_000/model_optim_rng.pt"));
    assertFalse(Files.exists(work.resolve("out")), "nothing written: " + r);
  }

  @Test
  void aRankFileWhosePickleNamesOsSystemIsRefusedWithoutRunningIt() throws IOException {
    Path m = copy();
    Path rank = m.resolve("iter_0000001/mp_rank_00_000/model_optim_rng.pt");
    Path marker = work.resolve("pwned");
    try (ZipOutputStream zip = new ZipOutputStream(Files.newOutputStream(rank))) {
      zip.putNextEntry(new ZipEntry("archive/data.pkl"));
      String cmd = "touch " + marker;
      OutputStream o = zip;
      o.write(("\u0080\u0002cos\nsystem\nX").getBytes(StandardCharsets.ISO_8859_1));
      o.write(new byte[] {(byte) cmd.length(), 0, 0, 0});
      o.write((cmd + "\u0085R.").getBytes(StandardCharsets.ISO_8859_1));
      zip.closeEntry();
      zip.putNextEntry(new ZipEntry("archive/version"));
      o.write("3\n".getBytes(StandardCharsets.US_ASCII));
      zip.closeEntry();
    }
    fails(back(m, "--moe-grouped-gemm", "--mtp-num-layers", "1", "--source-expert-parallel-size", "2"),
        "mp_rank_00_000/model_optim_rng.pt", "os.system", "nothing was executed");
    assertFalse(Files.exists(marker));
  }

  @Test
  void loraMergeNeedsBothRankAndAlpha() {
    Checkpoints.Run r = back(mcore, "--lora-r", "8");
    assertTrue(r.err.contains("merging LoRA weights needs both --lora-r and --lora-alpha"), r.err);
  }
}
