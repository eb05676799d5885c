package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * DeepSeek's FP8 release on the CPU: fp8-to-bf16 checked against an independent dequantiser, and hf2mcore straight
 * from FP8 equal, byte for byte, to hf2mcore of the dequantised copy.
 */
class Fp8Test {
  @TempDir static Path work;
  static Path fp8;

  @BeforeAll
  static void model() {
    // 16x16 scale blocks so that the tiny weights have several blocks, and partial edge blocks (24, 56 rows)
    fp8 = Checkpoints.tinyModel(work.resolve("fp8"), "--fp8", "--fp8-block", "16");
  }

  @Test
  void fp8ToBf16DequantisesExactly() throws Exception {
    Path bf16 = work.resolve("bf16");
    Checkpoints.Run r = Checkpoints.cli("fp8-to-bf16", "--load-dir", fp8.toString(), "--save-dir", bf16.toString());
    assertEquals(0, r.exit, r.toString());
    assertEquals(Files.list(fp8).filter(p -> p.toString().endsWith(".safetensors")).count(),
        Files.list(bf16).filter(p -> p.toString().endsWith(".safetensors")).count(), "same shard files");
    Torch.requireTorch();
    Torch.Result ok = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/check_fp8.py").toString(), fp8.toString(),
        bf16.toString(), "16"));
    assertEquals(0, ok.exit, ok.output);
    assertTrue(ok.output.startsWith("OK "), ok.output);
  }

  @Test
  void hf2mcoreFromFp8EqualsHf2mcoreOfTheBf16Copy() throws Exception {
    Path bf16 = work.resolve("bf16-for-mcore");
    assertEquals(0, Checkpoints.cli("fp8-to-bf16", "--load-dir", fp8.toString(), "--save-dir", bf16.toString()).exit);
    String[] layout = {"--moe-grouped-gemm", "--mtp-num-layers", "1", "--target-tensor-parallel-size", "2",
        "--target-expert-parallel-size", "2"};
    TreeMap<String, byte[]> direct = convert(fp8, "mc-direct", layout);
    TreeMap<String, byte[]> viaCopy = convert(bf16, "mc-via-bf16", layout);
    assertEquals(viaCopy.keySet(), direct.keySet());
    for (Map.Entry<String, byte[]> e : viaCopy.entrySet()) {
      if (!e.getKey().equals("config.json")) {
        assertArrayEquals(e.getValue(), direct.get(e.getKey()), e.getKey());
      }
    }
  }

  private static TreeMap<String, byte[]> convert(Path from, String name, String... layout) throws IOException {
    Path out = work.resolve(name);
    String[] args = new String[5 + layout.length];
    args[0] = "hf2mcore";
    args[1] = "--load-dir";
    args[2] = from.toString();
    args[3] = "--save-dir";
    args[4] = out.toString();
    System.arraycopy(layout, 0, args, 5, layout.length);
    Checkpoints.Run r = Checkpoints.cli(args);
    assertEquals(0, r.exit, r.toString());
    return Checkpoints.dataContents(out);
  }

  @Test
  void aMissingScaleIsNamed() throws Exception {
    Path broken = work.resolve("broken");
    Files.createDirectories(broken);
    try (var s = Files.list(fp8)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        Files.copy(p, broken.resolve(p.getFileName()));
      }
    }
    Path index = broken.resolve("model.safetensors.index.json");
    String json = Files.readString(index, StandardCharsets.UTF_8);
    String line = json.lines().filter(l -> l.contains("layers.0.self_attn.o_proj.weight_scale_inv")).findFirst()
        .orElseThrow();
    Files.writeString(index, json.replace(line + "\n", ""), StandardCharsets.UTF_8);
    Checkpoints.Run r = Checkpoints.cli("hf2mcore", "--load-dir", broken.toString(), "--save-dir",
        work.resolve("never").toString());
    assertTrue(r.exit != 0 && r.err.contains("\"model.layers.0.self_attn.o_proj.weight\" is F8_E4M3")
        && r.err.contains("o_proj.weight_scale_inv"), r.toString());
    assertTrue(!Files.exists(work.resolve("never/latest_checkpointed_iteration.txt")));
  }
}
