package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;

/**
 * hf2mcore on generated tiny models, on the DirectRunner and the FlinkRunner: every output tensor is checked by
 * real torch against an independent recomputation from the HF input (check_mcore.py), every pickle against the
 * weights-only allowlist, and both runners must write the same bytes.
 */
class Hf2McoreEndToEndTest {
  @TempDir static Path work;
  static Map<String, Path> models;

  @BeforeAll
  static void models() {
    models = Checkpoints.standardModels(work);
  }

  /**
   * name, model ("tiny": 4 layers, 1 dense, 8 experts; "deep": 6 layers, 3 dense, 2 MTP; "full61": 61 layers),
   * CLI layout flags, the checker's equivalent flags. The matrix of the HF → mcore issue, and more.
   */
  static Stream<Arguments> layouts() {
    return Stream.of(
        Arguments.of("default", "tiny", "", ""),
        Arguments.of("grouped-gemm-mtp", "tiny", "--moe-grouped-gemm --mtp-num-layers 1", "--grouped-gemm --mtp 1"),
        Arguments.of("tp2", "tiny", "--target-tensor-parallel-size 2", "--tp 2"),
        Arguments.of("pp2-ep2", "tiny", "--target-pipeline-parallel-size 2 --target-expert-parallel-size 2",
            "--pp 2 --ep 2"),
        Arguments.of("tp2-pp4-ep2-grouped", "tiny", "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 4 "
            + "--target-expert-parallel-size 2 --moe-grouped-gemm", "--tp 2 --pp 4 --ep 2 --grouped-gemm"),
        Arguments.of("tp2-pp2-ep2-grouped-mtp", "tiny", "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
            + "--target-expert-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1",
            "--tp 2 --pp 2 --ep 2 --grouped-gemm --mtp 1"),
        Arguments.of("tp2-ep4-local-experts", "tiny", "--target-tensor-parallel-size 2 --target-expert-parallel-size 4",
            "--tp 2 --ep 4"),
        Arguments.of("tp2-ep4-grouped-extend-ep", "tiny", "--target-tensor-parallel-size 2 --target-expert-parallel-size 4 "
            + "--moe-grouped-gemm --moe-tp-extend-ep", "--tp 2 --ep 4 --grouped-gemm --tp-extend-ep"),
        Arguments.of("tp2-pp2-mla-mm-split", "tiny", "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
            + "--mla-mm-split", "--tp 2 --pp 2 --mla-mm-split"),
        Arguments.of("tp4-mla-mm-split", "tiny", "--target-tensor-parallel-size 4 --mla-mm-split",
            "--tp 4 --mla-mm-split"),
        Arguments.of("tp4-ep8-grouped", "tiny", "--target-tensor-parallel-size 4 --target-expert-parallel-size 8 "
            + "--moe-grouped-gemm", "--tp 4 --ep 8 --grouped-gemm"),
        Arguments.of("vpp", "tiny", "--target-pipeline-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 "
            + "--mtp-num-layers 1", "--pp 2 --vpp 1 --mtp 1"),
        Arguments.of("dualpipe", "tiny", "--target-pipeline-parallel-size 2 --schedules-method dualpipev "
            + "--mtp-num-layers 1", "--pp 2 --dualpipe --mtp 1"),
        Arguments.of("noop", "tiny", "--target-pipeline-parallel-size 2 --num-layers 6 --noop-layers 2,5",
            "--pp 2 --num-layers 6 --noop 2,5"),
        Arguments.of("num-layer-list", "tiny", "--target-pipeline-parallel-size 2 --num-layer-list 3,1",
            "--pp 2 --num-layer-list 3,1"),
        Arguments.of("old-key-names", "tiny", "--mcore-key-names 2025.03 --target-pipeline-parallel-size 2 "
            + "--mtp-num-layers 1", "--key-names 2025.03 --pp 2 --mtp 1"),
        Arguments.of("first-k-dense-2", "deep", "--first-k-dense-replace 2 --num-layers 5 --mtp-num-layers 1",
            "--first-k-dense-replace 2 --num-layers 5 --mtp 1"),
        Arguments.of("first-k-dense-quirk-2mtp", "deep", "--first-k-dense-replace 1 --num-layers 4 "
            + "--target-pipeline-parallel-size 2 --mtp-num-layers 2",
            "--first-k-dense-replace 1 --num-layers 4 --pp 2 --mtp 2"),
        Arguments.of("vpp-noop-3stages", "deep", "--target-pipeline-parallel-size 3 --num-layers 9 --noop-layers 0,4,8 "
            + "--num-layers-per-virtual-pipeline-stage 1 --mtp-num-layers 2 --moe-grouped-gemm",
            "--pp 3 --num-layers 9 --noop 0,4,8 --vpp 1 --mtp 2 --grouped-gemm"),
        Arguments.of("dualpipe-noop-extend", "deep", "--target-pipeline-parallel-size 2 --num-layers 8 --noop-layers 5,6 "
            + "--schedules-method dualpipev --target-tensor-parallel-size 2 --moe-tp-extend-ep --moe-grouped-gemm",
            "--pp 2 --num-layers 8 --noop 5,6 --dualpipe --tp 2 --tp-extend-ep --grouped-gemm"),
        Arguments.of("61-layers-num-layer-list-pp4-ep4-grouped-mtp", "full61", "--num-layer-list 16,15,15,15 "
            + "--target-pipeline-parallel-size 4 --target-expert-parallel-size 4 --moe-grouped-gemm --mtp-num-layers 1",
            "--num-layer-list 16,15,15,15 --pp 4 --ep 4 --grouped-gemm --mtp 1"),
        Arguments.of("shipped-script-64-slots-noop-vpp2-pp8-tp2-ep4-mtp", "full61", "--moe-grouped-gemm "
            + "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 8 --target-expert-parallel-size 4 "
            + "--num-layers 64 --mtp-num-layers 1 --num-layers-per-virtual-pipeline-stage 2 --noop-layers 47,62,63",
            "--grouped-gemm --tp 2 --pp 8 --ep 4 --num-layers 64 --mtp 1 --vpp 2 --noop 47,62,63"));
  }

  private static List<String> split(String s) {
    return s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
  }

  private static Path convert(String model, String outName, String flags, String... beamFlags) {
    Path hf = models.get(model);
    Path out = work.resolve(outName);
    List<String> args = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir", out.toString()));
    args.addAll(split(flags));
    args.addAll(List.of(beamFlags));
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    return out;
  }

  @ParameterizedTest(name = "{0}")
  @MethodSource("layouts")
  void directRunnerOutputMatchesTheSpecInRealTorch(String name, String model, String flags, String checker)
      throws Exception {
    Path out = convert(model, "direct-" + name, flags);
    String report = Torch.checkMcore(models.get(model), out, split(checker).toArray(new String[0]));
    assertTrue(report.startsWith("OK "), report);
    assertTrue(Checkpoints.auditWeightsOnly(out) > 0);
    assertTrue(Files.exists(out.resolve("config.json")), "config.json is copied for the reverse direction");
    assertEquals("1", Files.readString(out.resolve("latest_checkpointed_iteration.txt")));
    try (Stream<Path> s = Files.walk(out)) {
      assertTrue(s.noneMatch(p -> p.toString().endsWith(".ckptbeam-partial")), "no staging file is left");
    }
  }

  @Test
  void flinkRunnerWritesTheSameBytesAsTheDirectRunner() throws Exception {
    String flags = "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --target-expert-parallel-size 2 "
        + "--moe-grouped-gemm --mtp-num-layers 1";
    Path direct = convert("tiny", "runner-direct", flags);
    Path flink = convert("tiny", "runner-flink", flags, "--runner=FlinkRunner", "--flinkMaster=[local]",
        "--parallelism=2");
    Torch.checkMcore(models.get("tiny"), flink, "--tp", "2", "--pp", "2", "--ep", "2", "--grouped-gemm", "--mtp", "1");
    TreeMap<String, byte[]> a = Checkpoints.contents(direct);
    TreeMap<String, byte[]> b = Checkpoints.contents(flink);
    assertEquals(a.keySet(), b.keySet());
    for (Map.Entry<String, byte[]> e : a.entrySet()) {
      assertArrayEquals(e.getValue(), b.get(e.getKey()), e.getKey());
    }
  }

  @Test
  void repeatedRunsAreByteIdentical() throws Exception {
    String flags = "--moe-grouped-gemm --mtp-num-layers 1 --target-expert-parallel-size 2";
    TreeMap<String, byte[]> first = Checkpoints.contents(convert("tiny", "repeat-1", flags));
    TreeMap<String, byte[]> second = Checkpoints.contents(convert("tiny", "repeat-2", flags));
    assertEquals(first.keySet(), second.keySet());
    first.forEach((k, v) -> assertArrayEquals(v, second.get(k), k));
  }

  @Test
  void dryRunPrintsThePlanAndWritesNothing() {
    Path out = work.resolve("dry");
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", models.get("full61").toString(), "--save-dir",
        out.toString(), "--moe-grouped-gemm", "--target-tensor-parallel-size", "2", "--target-pipeline-parallel-size",
        "8", "--target-expert-parallel-size", "4", "--num-layers", "64", "--mtp-num-layers", "1",
        "--num-layers-per-virtual-pipeline-stage", "2", "--noop-layers", "47,62,63", "--dry-run");
    assertEquals(0, r.exit, r.toString());
    assertTrue(r.out.contains("iter_0000001/mp_rank_01_007_003/model_optim_rng.pt"), r.out);
    // docs/mapping.md §4.7 example 5: pp 7 holds HF 46 alone in model2, and model3 only MTP, final norm, output layer
    assertTrue(r.out.contains("model2: HF 46→0 ("), r.out);
    assertTrue(r.out.contains("model3: no decoder layer +MTP HF [61] +final norm, output layer"), r.out);
    assertTrue(r.out.contains("total: 64 rank file(s)"), r.out);
    assertTrue(!Files.exists(out), "a dry run writes nothing");
  }
}
