package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

/** {@code --save-lora-to-hf}: PEFT tensors checked against check_lora_export.py, at tp 1 and tp 2. */
class LoraExportTest {
  @TempDir Path work;

  private static final List<String> MODULES = List.of("linear_qkv", "linear_proj", "linear_q_up_proj", "linear_fc1",
      "linear_fc2");

  @ParameterizedTest(name = "tp {0}")
  @ValueSource(ints = {1, 2})
  void exportMatchesAnIndependentGather(int tp) throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mcore = work.resolve("mcore");
    assertEquals(0, Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--mtp-num-layers", "1", "--target-tensor-parallel-size", Integer.toString(tp), "--target-expert-parallel-size",
        "2").exit);
    Torch.requireTorch();
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", work.toString(), "--hidden", "64"));
    assertEquals(0, made.exit, made.output);
    Path out = work.resolve("peft");
    List<String> args = new ArrayList<>(List.of("mcore2hf", "--load-dir", mcore.toString(), "--save-dir", out.toString(),
        "--mtp-num-layers", "1", "--source-tensor-parallel-size", Integer.toString(tp), "--source-expert-parallel-size",
        "2", "--save-lora-to-hf", "--lora-r", "4", "--lora-alpha", "8", "--lora-load", work.resolve("lora-only").toString(),
        "--lora-target-modules"));
    args.addAll(MODULES);
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    List<String> check = new ArrayList<>(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/check_lora_export.py").toString(), "--lora",
        work.resolve("lora-only").toString(), "--out", out.toString(), "--config", hf.resolve("config.json").toString(),
        "--tp", Integer.toString(tp), "--ep", "2", "--mtp", "1", "--modules"));
    check.addAll(MODULES);
    Torch.Result ok = Torch.run(check);
    assertEquals(0, ok.exit, ok.output);
    assertTrue(ok.output.startsWith("OK "), ok.output);
  }

  @Test
  void groupedGemmExportIsRefusedClearly() throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mcore = work.resolve("mcore");
    assertEquals(0, Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--moe-grouped-gemm").exit);
    Checkpoints.Run r = Checkpoints.cli("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
        work.resolve("o").toString(), "--moe-grouped-gemm", "--save-lora-to-hf", "--lora-r", "4", "--lora-alpha", "8",
        "--lora-target-modules", "linear_fc1");
    assertTrue(r.exit != 0 && r.err.contains("--save-lora-to-hf with --moe-grouped-gemm"), r.toString());
  }
}
