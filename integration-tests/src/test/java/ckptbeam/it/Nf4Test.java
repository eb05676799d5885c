package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.BFloat16;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorLocation;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;

/** --qlora-nf4 in both encodings, checked key by key by check_nf4.py (numpy, from docs/mapping.md §7). */
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

  /** mcore2hf dequantises NF4 (lossy): quantised weights come back within the code grid's error, the rest exactly. */
  @ParameterizedTest(name = "{0}")
  @CsvSource({"npu", "bitsandbytes"})
  void nf4ComesBackWithinTheQuantisationError(String format) throws Exception {
    Path hf = Checkpoints.tinyModel(work.resolve("hf"));
    Path mc = work.resolve("mc");
    Checkpoints.Run fwd = Checkpoints.cli("hf2mcore", "--load-dir", hf.toString(), "--save-dir", mc.toString(),
        "--qlora-nf4", "--nf4-format", format, "--moe-grouped-gemm", "--mtp-num-layers", "1");
    assertEquals(0, fwd.exit, fwd.toString());
    Path back = work.resolve("back");
    Checkpoints.Run rev = Checkpoints.cli("mcore2hf", "--load-dir", mc.toString(), "--save-dir", back.toString(),
        "--moe-grouped-gemm", "--mtp-num-layers", "1");
    assertEquals(0, rev.exit, rev.toString());
    Map<String, float[]> in = values(hf);
    Map<String, float[]> out = values(back);
    int lossy = 0;
    for (Map.Entry<String, float[]> e : out.entrySet()) {
      float[] a = in.get(e.getKey());
      float[] b = e.getValue();
      boolean quantised = e.getKey().contains("proj") || e.getKey().contains("lm_head")
          || e.getKey().contains("shared_head.head");
      float max = 0;
      for (float v : a) {
        max = Math.max(max, Math.abs(v));
      }
      for (int i = 0; i < a.length; i++) {
        if (quantised) {
          assertTrue(Math.abs(a[i] - b[i]) <= 0.16f * max + 1e-6f, e.getKey() + "[" + i + "]: " + a[i] + " vs " + b[i]);
        } else {
          assertEquals(Float.floatToIntBits(a[i]), Float.floatToIntBits(b[i]), e.getKey() + "[" + i + "]");
        }
      }
      if (quantised && !Arrays.equals(a, b)) {
        lossy++;
      }
    }
    assertTrue(lossy > 20, "quantised tensors that changed: " + lossy);
  }

  /** Every tensor of an HF folder, widened to float. */
  private static Map<String, float[]> values(Path dir) throws Exception {
    Map<String, float[]> out = new HashMap<>();
    SafetensorsIndex index = SafetensorsIndex.read(dir.toString());
    for (String shard : index.shards()) {
      String path = dir.resolve(shard).toString();
      try (RangeReader r = CheckpointFiles.open(path)) {
        for (TensorLocation t : SafetensorsHeader.read(path).tensors()) {
          ByteBuffer b = ByteBuffer.allocate((int) t.byteSize()).order(ByteOrder.LITTLE_ENDIAN);
          r.readFully(t.offset(), b);
          float[] v = new float[(int) t.shape().numel()];
          for (int i = 0; i < v.length; i++) {
            v[i] = t.dtype() == DType.BF16 ? BFloat16.toFloat(b.getShort(2 * i)) : b.getFloat(4 * i);
          }
          out.put(t.name(), v);
        }
      }
    }
    return out;
  }
}
