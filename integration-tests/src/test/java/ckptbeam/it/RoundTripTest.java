package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * HF → mcore → HF gives back every converted tensor bit for bit, for every layout of the HF → mcore matrix; and an
 * mcore checkpoint written by real PyTorch in MindSpeed's layout converts to HF.
 */
class RoundTripTest {
  @TempDir static Path work;
  static Map<String, Path> models;
  static Path tiny;

  @BeforeAll
  static void models() {
    models = Checkpoints.standardModels(work);
    tiny = models.get("tiny");
  }

  /** Layouts whose output keeps the input's layer numbering (the first-k-dense quirk renumbers, §4.1). */
  static Stream<Arguments> layouts() {
    return Hf2McoreEndToEndTest.layouts().filter(a -> !((String) a.get()[0]).startsWith("first-k-dense"));
  }

  private static List<String> split(String s) {
    return s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("layouts")
  void roundTripIsBitExact(String name, String model, String flags, String checker) throws Exception {
    Path hf = models.get(model);
    Path mcore = work.resolve("rt-" + name + "/mcore");
    Path back = work.resolve("rt-" + name + "/hf");
    List<String> fwd = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString()));
    fwd.addAll(split(flags));
    Checkpoints.Run r = Checkpoints.cli(fwd.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    List<String> rev = new ArrayList<>(List.of("mcore2hf", "--load-dir", mcore.toString(), "--save-dir", back.toString()));
    rev.addAll(split(flags.replace("--target-", "--source-")));
    r = Checkpoints.cli(rev.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    String notConverted = flags.contains("--mtp-num-layers") ? "" : model.equals("tiny") ? "model.layers.4."
        : model.equals("deep") ? "model.layers.6.,model.layers.7." : "model.layers.61.";
    String report = roundTrip(hf, back, notConverted);
    assertTrue(report.startsWith("OK "), report);
    assertTrue(Files.exists(back.resolve("config.json")));
  }

  static String roundTrip(Path in, Path out, String expectMissing) throws Exception {
    Torch.Result r = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/check_roundtrip.py").toString(),
        "--hf-in", in.toString(), "--hf-out", out.toString(), "--expect-missing", expectMissing));
    assertEquals(0, r.exit, r.output);
    return r.output;
  }

  @Test
  void firstKDenseQuirkComesBackRenumberedWithAConsistentConfig() throws Exception {
    Path mcore = work.resolve("quirk/mcore");
    Path back = work.resolve("quirk/hf");
    String flags = "--first-k-dense-replace 1 --num-layers 4 --target-pipeline-parallel-size 2";
    List<String> fwd = new ArrayList<>(List.of("hf2mcore", "--load-dir", models.get("deep").toString(),
        "--save-dir", mcore.toString()));
    fwd.addAll(split(flags));
    assertEquals(0, Checkpoints.cli(fwd.toArray(new String[0])).exit);
    List<String> rev = new ArrayList<>(List.of("mcore2hf", "--load-dir", mcore.toString(), "--save-dir", back.toString()));
    rev.addAll(split(flags.replace("--target-", "--source-")));
    Checkpoints.Run r = Checkpoints.cli(rev.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    String config = Files.readString(back.resolve("config.json"));
    assertTrue(config.contains("\"num_hidden_layers\": 4"), config);
    assertTrue(config.contains("\"first_k_dense_replace\": 1"), config);
    // HF layers 0, 3, 4, 5 became 0, 1, 2, 3: the output's layer 1 is the input's layer 3
    Path file = back.resolve("model-00002-of-000004.safetensors");
    assertTrue(Files.exists(file));
  }

  @Test
  void aCheckpointWrittenByPyTorchInMindSpeedsLayoutConverts() throws Exception {
    for (String[] layout : new String[][] {
        {"--tp 2 --pp 2 --ep 2 --grouped-gemm --mtp 1", "--source-tensor-parallel-size 2 --source-pipeline-parallel-size"
            + " 2 --source-expert-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1"},
        {"--pp 2 --vpp 1 --mtp 1 --tp 2 --mla-mm-split", "--source-pipeline-parallel-size 2 "
            + "--num-layers-per-virtual-pipeline-stage 1 --mtp-num-layers 1 --source-tensor-parallel-size 2 --mla-mm-split"}}) {
      Path dir = work.resolve("pytorch-" + Math.abs(layout[0].hashCode()));
      Path mcore = dir.resolve("mcore");
      List<String> write = new ArrayList<>(List.of(Torch.PYTHON,
          Torch.repo().resolve("integration-tests/src/test/python/check_mcore.py").toString(), "--hf", tiny.toString(),
          "--mcore", mcore.toString(), "--write"));
      write.addAll(split(layout[0]));
      Torch.requireTorch();
      Torch.Result w = Torch.run(write);
      assertEquals(0, w.exit, w.output);
      List<String> rev = new ArrayList<>(List.of("mcore2hf", "--load-dir", mcore.toString(), "--save-dir",
          dir.resolve("hf").toString(), "--model-config", tiny.resolve("config.json").toString()));
      rev.addAll(split(layout[1]));
      Checkpoints.Run r = Checkpoints.cli(rev.toArray(new String[0]));
      assertEquals(0, r.exit, r.toString());
      assertTrue(roundTrip(tiny, dir.resolve("hf"), "").startsWith("OK "));
    }
  }
}
