package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** --qlora-nf4 in both encodings, checked key by key by check_nf4.py (numpy, from mapping.md §7). */
class Nf4Test {
  @TempDir Path work;

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource({"npu, false", "npu, true", "bitsandbytes, false", "bitsandbytes, true"})
  void quantisesExactlyTheKeysOfTheSpec(String format, boolean grouped) throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mc = work.resolve("mc");
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mc.toString(),
        "--qlora-nf4", "--nf4-format", format, "--target-tensor-parallel-size", "2", "--mtp-num-layers", "1"));
    if (grouped) {
      args.add("--moe-grouped-gemm");
    }
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    assertTrue(Checkpoints.auditWeightsOnly(mc) > 0);
    Torch.requireTorch();
    List<String> check = new ArrayList<>(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/check_nf4.py").toString(), format, "--hf",
        hf.toString(), "--mcore", mc.toString(), "--tp", "2", "--mtp", "1"));
    if (grouped) {
      check.add("--grouped-gemm");
    }
    ProcessBuilder pb = new ProcessBuilder(check).directory(
        Torch.repo().resolve("integration-tests/src/test/python").toFile()).redirectErrorStream(true);
    Process p = pb.start();
    String out = new String(p.getInputStream().readAllBytes());
    assertEquals(0, p.waitFor(), out);
    assertTrue(out.startsWith("OK "), out);
  }
}
