package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.tensor.TensorLocation;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

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
  void theBf16CopyHasTheModelFoldersOtherFilesAtAnyDepth() throws Exception {
    Path in = Checkpoints.copyTree(fp8, work.resolve("fp8-with-files"));
    byte[] big = new byte[(9 << 20) + 123]; // more than one 8 MiB piece of the streamed copy
    new java.util.Random(7).nextBytes(big);
    Map<String, byte[]> copied = Map.of("inference/model.py", "print('v3')\n".getBytes(StandardCharsets.UTF_8),
        "chat_template.jinja", "{{ messages }}".getBytes(StandardCharsets.UTF_8),
        "README.md", "# model\n".getBytes(StandardCharsets.UTF_8), "figures/benchmark.png", big);
    for (Map.Entry<String, byte[]> f : copied.entrySet()) {
      Files.createDirectories(in.resolve(f.getKey()).getParent());
      Files.write(in.resolve(f.getKey()), f.getValue());
    }
    Files.createDirectories(in.resolve(".cache/huggingface"));
    Files.writeString(in.resolve(".cache/huggingface/download.lock"), "x");
    Files.createDirectories(in.resolve("original"));
    Files.writeString(in.resolve("original/pytorch_model.bin"), "weights in another format");
    Path out = in.resolve("bf16"); // inside the input folder: not copied into itself
    Checkpoints.Run r = Checkpoints.cli("fp8-to-bf16", "--load-dir", in.toString(), "--save-dir", out.toString());
    assertEquals(0, r.exit, r.toString());
    for (Map.Entry<String, byte[]> f : copied.entrySet()) {
      assertArrayEquals(f.getValue(), Files.readAllBytes(out.resolve(f.getKey())), f.getKey());
    }
    assertFalse(Files.exists(out.resolve(".cache")), "hidden folders are not copied");
    assertFalse(Files.exists(out.resolve("original")), "nor weights in other formats");
    assertFalse(Files.exists(out.resolve("bf16")), "the save dir is not copied into itself");
    ObjectNode config = (ObjectNode) new ObjectMapper().readTree(out.resolve("config.json").toFile());
    assertFalse(config.has("quantization_config"), config.toString());
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

  /** A copy of the FP8 model to break. */
  private static Path copyOfFp8(String name) throws IOException {
    Path broken = work.resolve(name);
    Files.createDirectories(broken);
    try (var s = Files.list(fp8)) {
      for (Path p : (Iterable<Path>) s::iterator) {
        Files.copy(p, broken.resolve(p.getFileName()));
      }
    }
    return broken;
  }

  @ParameterizedTest(name = "{0} with a scale of {1}")
  @CsvSource({"fp8-to-bf16, Infinity", "hf2mcore, NaN", "hf2mcore, -Infinity"})
  void aNonFiniteScaleIsRefusedBeforeAnythingIsWritten(String command, float poison) throws Exception {
    Path broken = copyOfFp8("poisoned-" + command + poison);
    String scale = "model.layers.1.mlp.experts.3.down_proj.weight_scale_inv";
    TensorLocation loc = null;
    for (Path shard : Files.list(broken).filter(p -> p.toString().endsWith(".safetensors")).toList()) {
      for (TensorLocation t : SafetensorsHeader.read(shard.toString()).tensors()) {
        if (t.name().equals(scale)) {
          loc = t;
        }
      }
    }
    try (FileChannel ch = FileChannel.open(Path.of(loc.file()), StandardOpenOption.WRITE)) {
      long cols = loc.shape().dim(1);
      ch.write(ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN).putFloat(0, poison), loc.offset() + (cols + 1) * 4);
    }
    Path out = work.resolve("never-" + command + poison);
    Checkpoints.Run r = Checkpoints.cli(command, "--load-dir", broken.toString(), "--save-dir", out.toString());
    assertEquals(1, r.exit, r.toString());
    assertEquals("ckptbeam: error: " + loc.file() + ": Fp8Scale: scale \"" + scale + "\" holds " + poison
        + " at block [1, 1]; a block scale must be a finite number", r.err.strip());
    assertFalse(Files.exists(out), "nothing written: " + r);
  }

  @ParameterizedTest(name = "{0} {1}")
  @CsvSource(delimiter = '|', value = {
      "fmt|e5m2|field \"quantization_config.fmt\" is \"e5m2\"; only \"e4m3\"",
      "scale_fmt|fp16|field \"quantization_config.scale_fmt\" is \"fp16\"; only \"ue8m0\""})
  void anUnknownQuantisationFormatIsRefusedByField(String field, String value, String message) throws Exception {
    Path broken = copyOfFp8("fmt-" + field);
    Path config = broken.resolve("config.json");
    ObjectNode json = (ObjectNode) new ObjectMapper().readTree(config.toFile());
    ((ObjectNode) json.get("quantization_config")).put(field, value);
    Files.writeString(config, json.toPrettyString(), StandardCharsets.UTF_8);
    for (String command : List.of("fp8-to-bf16", "hf2mcore")) {
      Path out = work.resolve("never-fmt-" + command);
      Checkpoints.Run r = Checkpoints.cli(command, "--load-dir", broken.toString(), "--save-dir", out.toString());
      assertTrue(r.exit != 0 && r.err.contains(config + ": " + message), r.toString());
      assertFalse(Files.exists(out), "nothing written: " + r);
    }
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
