package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * mcore2mcore in one pass equals mcore2hf followed by hf2mcore, byte for byte (every rank file and config.json),
 * for layout pairs covering each layout family on each side.
 */
class Mcore2McoreTest {
  @TempDir static Path shared;
  @TempDir Path work;
  static Path hf;

  @BeforeAll
  static void model() {
    hf = Checkpoints.tinyModel(shared.resolve("hf"));
  }

  private static List<String> split(String s) {
    return s.isBlank() ? List.of() : List.of(s.trim().split("\\s+"));
  }

  /** hf2mcore's layout flags as they are written for the source side of mcore2hf or mcore2mcore. */
  private static List<String> sided(String flags, String side) {
    List<String> out = new ArrayList<>();
    for (String f : split(flags)) {
      if (f.startsWith("--target-") && f.endsWith("-parallel-size")) {
        out.add("--" + side + "-" + f.substring("--target-".length()));
      } else if (f.startsWith("--") && !f.equals("--mtp-num-layers") && !f.equals("--first-k-dense-replace")) {
        out.add("--" + side + "-" + f.substring(2));
      } else {
        out.add(f);
      }
    }
    return out;
  }

  private static Path run(List<String> args) {
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, args + "\n" + r);
    return Path.of(args.get(args.indexOf("--save-dir") + 1));
  }

  private static List<String> cmd(String command, Path in, Path out, List<String> flags) {
    List<String> args = new ArrayList<>(List.of(command, "--load-dir", in.toString(), "--save-dir", out.toString(),
        "--quiet"));
    args.addAll(flags);
    return args;
  }

  /** mcore2hf's flags: the source parallel sizes, the other layout flags unprefixed. */
  private static List<String> reverse(String flags) {
    List<String> out = new ArrayList<>();
    for (String f : split(flags)) {
      out.add(f.startsWith("--target-") ? "--source-" + f.substring("--target-".length()) : f);
    }
    return out;
  }

  @ParameterizedTest(name = "{0} -> {1}")
  @CsvSource(delimiter = '|', value = {
      "--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --moe-grouped-gemm | "
          + "--target-expert-parallel-size 4",
      "--target-expert-parallel-size 4 | --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 "
          + "--moe-grouped-gemm",
      "--target-tensor-parallel-size 2 --target-expert-parallel-size 2 --moe-grouped-gemm --moe-tp-extend-ep | "
          + "--target-pipeline-parallel-size 2",
      "--target-pipeline-parallel-size 2 | --target-tensor-parallel-size 2 --target-expert-parallel-size 2 "
          + "--moe-grouped-gemm --moe-tp-extend-ep",
      "--target-tensor-parallel-size 2 --mla-mm-split | --target-expert-parallel-size 2 --moe-grouped-gemm",
      "--target-expert-parallel-size 2 | --target-tensor-parallel-size 4 --mla-mm-split",
      "--target-pipeline-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 | --target-tensor-parallel-size 2",
      "--target-tensor-parallel-size 2 | --target-pipeline-parallel-size 2 --schedules-method dualpipev",
      "--target-pipeline-parallel-size 2 --schedules-method dualpipev | --target-pipeline-parallel-size 4 "
          + "--num-layer-list 1,1,1,1",
      "--target-pipeline-parallel-size 2 --num-layers 6 --noop-layers 2,5 | --target-pipeline-parallel-size 2 "
          + "--num-layer-list 3,1 --target-tensor-parallel-size 2",
      "--target-pipeline-parallel-size 2 --num-layer-list 3,1 | --target-pipeline-parallel-size 3 --num-layers 6 "
          + "--noop-layers 0,3",
      "--target-pipeline-parallel-size 2 --mcore-key-names 2025.03 --moe-grouped-gemm | --target-tensor-parallel-size 2 "
          + "--moe-grouped-gemm",
      "--target-expert-parallel-size 2 | --target-pipeline-parallel-size 2 --mcore-key-names 2025.03",
      "--target-pipeline-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 --moe-grouped-gemm | "
          + "--target-pipeline-parallel-size 2 --num-layers-per-virtual-pipeline-stage 1 --target-tensor-parallel-size 2"})
  void onePassEqualsMcore2hfThenHf2mcore(String from, String to) throws Exception {
    String mtp = " --mtp-num-layers 1";
    Path source = run(cmd("hf2mcore", hf, work.resolve("source"), split(from + mtp)));
    List<String> both = new ArrayList<>(sided(from + mtp, "source"));
    both.addAll(sided(to, "target"));
    Path direct = run(cmd("mcore2mcore", source, work.resolve("direct"), both));
    Path viaHf = run(cmd("mcore2hf", source, work.resolve("via-hf"), reverse(from + mtp)));
    Path twoPass = run(cmd("hf2mcore", viaHf, work.resolve("two-pass"), split(to + mtp)));
    Checkpoints.assertSameFiles(twoPass, direct, false);
  }

  @Test
  void onFlinkWithResumeAndADryRun() throws Exception {
    String from = "--target-tensor-parallel-size 2 --moe-grouped-gemm --mtp-num-layers 1";
    Path source = run(cmd("hf2mcore", hf, work.resolve("source"), split(from)));
    List<String> both = new ArrayList<>(sided(from, "source"));
    both.addAll(List.of("--target-expert-parallel-size", "4", "--target-pipeline-parallel-size", "2"));
    List<String> dry = new ArrayList<>(both);
    dry.add("--dry-run");
    Checkpoints.Run plan = Checkpoints.cli(cmd("mcore2mcore", source, work.resolve("flink"), dry)
        .toArray(new String[0]));
    assertEquals(0, plan.exit, plan.toString());
    assertTrue(plan.out.contains("reads 2 rank file(s) of iter_0000001"), plan.out);
    assertTrue(plan.out.contains("total: 8 rank file(s)"), plan.out);
    assertFalse(Files.exists(work.resolve("flink")), "a dry run writes nothing");
    List<String> flink = new ArrayList<>(both);
    flink.addAll(List.of("--runner=FlinkRunner", "--flinkMaster=[local]", "--parallelism=2"));
    Path onFlink = run(cmd("mcore2mcore", source, work.resolve("flink"), flink));
    Path direct = run(cmd("mcore2mcore", source, work.resolve("direct"), both));
    Checkpoints.assertSameFiles(direct, onFlink, false);
    // a resumed run of a complete output writes nothing and says so
    List<String> again = new ArrayList<>(both);
    again.add("--resume");
    Checkpoints.Run resumed = Checkpoints.cli(cmd("mcore2mcore", source, work.resolve("direct"), again)
        .toArray(new String[0]));
    assertEquals(0, resumed.exit, resumed.toString());
    assertTrue(resumed.out.contains("already holds this conversion, complete"), resumed.out);
  }

  @Test
  void flagsWithoutTheirSideAreRefusedNamingBothSides() {
    Checkpoints.Run r = Checkpoints.cli("mcore2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("x").toString(), "--moe-grouped-gemm");
    assertEquals(2, r.exit, r.toString());
    assertEquals("ckptbeam: error: --moe-grouped-gemm is given per side in mcore2mcore: --source-moe-grouped-gemm "
        + "(the layout of --load-dir) or --target-moe-grouped-gemm (the layout to write)", r.err.strip());
    Checkpoints.Run n = Checkpoints.cli("mcore2mcore", "--load-dir", hf.toString(), "--save-dir",
        work.resolve("x").toString(), "--num-layers=6");
    assertTrue(n.err.contains("--num-layers is given per side in mcore2mcore: --source-num-layers"), n.err);
  }

  @Test
  void loraIsMergedWhileResharding() throws Exception {
    // the same merge as mcore2hf's, then the new layout: equal to mcore2hf --lora-r/--lora-alpha, then hf2mcore
    Path mcore = run(cmd("hf2mcore", hf, work.resolve("base"), split("--target-tensor-parallel-size 2 "
        + "--moe-grouped-gemm --mtp-num-layers 1")));
    Torch.requireTorch();
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", work.toString(), "--r", "4", "--alpha", "8", "--hidden", "64", "--local-experts", "8"));
    assertEquals(0, made.exit, made.output);
    Files.copy(hf.resolve("config.json"), work.resolve("combined/config.json"));
    List<String> lora = List.of("--lora-r", "4", "--lora-alpha", "8");
    List<String> both = new ArrayList<>(List.of("--source-tensor-parallel-size", "2", "--source-moe-grouped-gemm",
        "--mtp-num-layers", "1", "--target-expert-parallel-size", "2"));
    both.addAll(lora);
    Path direct = run(cmd("mcore2mcore", work.resolve("combined"), work.resolve("direct"), both));
    List<String> back = new ArrayList<>(List.of("--source-tensor-parallel-size", "2", "--moe-grouped-gemm",
        "--mtp-num-layers", "1"));
    back.addAll(lora);
    Path viaHf = run(cmd("mcore2hf", work.resolve("combined"), work.resolve("via-hf"), back));
    Path twoPass = run(cmd("hf2mcore", viaHf, work.resolve("two-pass"), List.of("--target-expert-parallel-size", "2",
        "--mtp-num-layers", "1")));
    Checkpoints.assertSameFiles(twoPass, direct, false);
    TreeMap<String, byte[]> actual = Checkpoints.dataContents(direct);
    Path unmerged = run(cmd("hf2mcore", run(cmd("mcore2hf", mcore, work.resolve("plain-hf"), List.of(
        "--source-tensor-parallel-size", "2", "--moe-grouped-gemm", "--mtp-num-layers", "1"))),
        work.resolve("plain"), List.of("--target-expert-parallel-size", "2", "--mtp-num-layers", "1")));
    assertFalse(Arrays.equals(Files.readAllBytes(unmerged.resolve("iter_0000001/mp_rank_00_000/"
        + "model_optim_rng.pt")), actual.get("iter_0000001/mp_rank_00_000/model_optim_rng.pt")), "the merge changed it");
  }
}
