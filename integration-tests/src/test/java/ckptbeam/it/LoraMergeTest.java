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
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/**
 * LoRA merge (docs/mapping.md §5.5): make_lora.py adds seeded factors to every linear module of a real checkpoint and
 * merges them independently in float arithmetic with torch; mcore2hf of the LoRA checkpoint, in both merge modes,
 * must equal mcore2hf of that independently merged checkpoint byte for byte.
 */
class LoraMergeTest {
  @TempDir Path work;

  private static List<String> split(String s) {
    return List.of(s.trim().split("\\s+"));
  }

  private Path back(Path from, String name, String flags, String... extra) {
    Path out = work.resolve(name);
    List<String> args = new ArrayList<>(List.of("mcore2hf", "--load-dir", from.toString(), "--save-dir", out.toString()));
    args.addAll(split(flags));
    args.addAll(List.of(extra));
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    return out;
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "grouped-gemm tp2 ep2 with MTP | --moe-grouped-gemm --mtp-num-layers 1 --target-tensor-parallel-size 2 "
          + "--target-expert-parallel-size 2 | 4",
      "local experts, mla-mm-split, tp2 pp2 | --mla-mm-split --target-tensor-parallel-size 2 "
          + "--target-pipeline-parallel-size 2 | 1"})
  void bothMergeModesEqualAnIndependentMerge(String name, String flags, int localExperts) throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mcore = work.resolve("mcore");
    List<String> fwd = new ArrayList<>(List.of("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString()));
    fwd.addAll(split(flags));
    assertEquals(0, Checkpoints.cli(fwd.toArray(new String[0])).exit);
    Torch.requireTorch();
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", work.toString(), "--r", "4", "--alpha", "8", "--hidden", "64", "--local-experts",
        Integer.toString(localExperts)));
    assertEquals(0, made.exit, made.output);
    Files.copy(hf.resolve("config.json"), work.resolve("combined/config.json"));
    Files.copy(hf.resolve("config.json"), work.resolve("merged/config.json"));

    String source = flags.replace("--target-", "--source-");
    TreeMap<String, byte[]> expected = Checkpoints.dataContents(back(work.resolve("merged"), "hf-expected", source));
    TreeMap<String, byte[]> combined = Checkpoints.dataContents(back(work.resolve("combined"), "hf-combined", source,
        "--lora-r", "4", "--lora-alpha", "8"));
    TreeMap<String, byte[]> separate = Checkpoints.dataContents(back(mcore, "hf-separate", source, "--lora-r", "4",
        "--lora-alpha", "8", "--lora-load", work.resolve("lora-only").toString()));
    TreeMap<String, byte[]> unmerged = Checkpoints.dataContents(back(mcore, "hf-unmerged", source));
    assertEquals(expected.keySet(), combined.keySet());
    assertEquals(expected.keySet(), separate.keySet());
    int changed = 0;
    for (Map.Entry<String, byte[]> e : expected.entrySet()) {
      assertArrayEquals(e.getValue(), combined.get(e.getKey()), "merge mode 1: " + e.getKey());
      assertArrayEquals(e.getValue(), separate.get(e.getKey()), "merge mode 2: " + e.getKey());
      if (e.getKey().endsWith(".safetensors") && !Arrays.equals(e.getValue(), unmerged.get(e.getKey()))) {
        changed++;
      }
    }
    assertTrue(changed >= 4, "the merge changed " + changed + " files");
  }

  @ParameterizedTest(name = "{0}")
  @CsvSource(delimiter = '|', value = {
      "missing factor|k=[x for x in m if x.endswith('lora_B.default.weight')][0]; del m[k]|is missing for",
      "LoRA of a layer the model does not have|k=[x for x in m if 'layers.0.' in x and x.endswith("
          + "'lora_A.default.weight')][0]; m[k.replace('layers.0.', 'layers.9.')]=m[k]|LoRA weights for a module "
          + "this layout does not hold",
      "no merge flags|NONE|pass --lora-r and --lora-alpha",
      "merge flags and no factors|BASE|hold no LoRA factors (lora_A/lora_B) for any module the layout converts"})
  void loraProblemsAreNamed(String name, String mutation, String message) throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mcore = work.resolve("mcore");
    assertEquals(0, Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString()).exit);
    Torch.requireTorch();
    Torch.Result made = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_lora.py").toString(), "--mcore", mcore.toString(),
        "--out", work.toString(), "--hidden", "64"));
    assertEquals(0, made.exit, made.output);
    Files.copy(hf.resolve("config.json"), work.resolve("combined/config.json"));
    List<String> args = new ArrayList<>(List.of("mcore2hf", "--load-dir", work.resolve(mutation.equals("BASE")
        ? "mcore" : "combined").toString(), "--save-dir", work.resolve("out").toString()));
    if (mutation.equals("BASE")) {
      args.addAll(List.of("--lora-r", "4", "--lora-alpha", "8")); // on the base checkpoint, which has no LoRA
    } else if (!mutation.equals("NONE")) {
      // change the LoRA factors of the checkpoint with torch; both merge flags are given
      Path rank = work.resolve("combined/iter_0000001/mp_rank_00/model_optim_rng.pt");
      Torch.Result r = Torch.run(List.of(Torch.PYTHON, "-c", "import torch,sys; p=sys.argv[1]; d=torch.load(p); "
          + "m=d['model']; " + mutation + "; torch.save(d, p)", rank.toString()));
      assertEquals(0, r.exit, r.output);
      args.addAll(List.of("--lora-r", "4", "--lora-alpha", "8"));
    }
    Checkpoints.Run r = Checkpoints.cli(args.toArray(new String[0]));
    assertTrue(r.exit != 0 && r.err.contains(message), r.toString());
    if (!mutation.equals("NONE")) {
      assertFalse(r.err.contains("pass --lora-r"), "the hint matches what was given: " + r.err);
    }
    assertFalse(Files.exists(work.resolve("out/model.safetensors.index.json")));
  }
}
