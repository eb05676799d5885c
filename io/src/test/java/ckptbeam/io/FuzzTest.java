package ckptbeam.io;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsTest;
import ckptbeam.io.storage.ByteArrayRangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorSpec;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import ckptbeam.io.torch.TorchCheckpointWriter;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.SplittableRandom;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Seeded random-mutation fuzzing of every parser of untrusted bytes: the safetensors header, the torch zip directory
 * and the pickle reader. Each mutant must either parse or fail with a {@link IOException} carrying a message: no
 * other exception, no hang, no unbounded allocation (the test JVM's heap is bounded). Runs briefly in the suite;
 * {@code -Dfuzz.iterations=N} runs longer.
 */
class FuzzTest {
  static final int ITERATIONS = Integer.getInteger("fuzz.iterations", 4000);
  @TempDir Path dir;

  /** Bit flips, byte overwrites with boundary values, truncation, duplication of a slice, extension. */
  static byte[] mutate(byte[] seed, SplittableRandom r) {
    byte[] b = seed.clone();
    int ops = 1 + r.nextInt(4);
    for (int k = 0; k < ops; k++) {
      switch (r.nextInt(6)) {
        case 0:
          b[r.nextInt(b.length)] ^= (byte) (1 << r.nextInt(8));
          break;
        case 1: {
          byte[] special = {0, (byte) 0xFF, 0x7F, (byte) 0x80, '{', '"', ':', ',', '[', ']', '.', '(', 'X', 'c', '\n'};
          b[r.nextInt(b.length)] = special[r.nextInt(special.length)];
          break;
        }
        case 2:
          b = Arrays.copyOf(b, Math.max(1, r.nextInt(b.length)));
          break;
        case 3: {
          int at = r.nextInt(b.length);
          int len = Math.min(b.length - at, 1 + r.nextInt(16));
          byte[] out = new byte[b.length + len];
          System.arraycopy(b, 0, out, 0, at + len);
          System.arraycopy(b, at, out, at + len, b.length - at);
          b = out;
          break;
        }
        case 4: {
          int at = r.nextInt(Math.max(1, b.length - 8));
          long v = r.nextBoolean() ? Long.MAX_VALUE : r.nextLong();
          for (int i = 0; i < 8 && at + i < b.length; i++) {
            b[at + i] = (byte) (v >>> (8 * i));
          }
          break;
        }
        default:
          b = Arrays.copyOf(b, b.length + 1 + r.nextInt(64));
      }
    }
    return b;
  }

  interface Parser {
    void parse(byte[] input) throws IOException;
  }

  static int fuzz(String what, byte[] seed, long seedValue, Parser p) {
    SplittableRandom r = new SplittableRandom(seedValue);
    int parsed = 0;
    long deadline = System.nanoTime() + 120_000_000_000L;
    for (int i = 0; i < ITERATIONS; i++) {
      byte[] input = mutate(seed, r);
      try {
        p.parse(input);
        parsed++;
      } catch (IOException e) {
        assertNotNull(e.getMessage(), what + " mutant " + i + ": an error without a message");
      } catch (RuntimeException | OutOfMemoryError | StackOverflowError e) {
        fail(what + " mutant " + i + " (seed " + seedValue + ") escaped as " + e, e);
      }
      assertTrue(System.nanoTime() < deadline, what + ": fuzzing took too long (a hang?)");
    }
    return parsed;
  }

  @Test
  void safetensorsHeaders() {
    byte[] seed = SafetensorsTest.workedExample();
    int parsed = fuzz("safetensors", seed, 42,
        in -> SafetensorsHeader.read("fuzz.safetensors", new ByteArrayRangeReader("fuzz", in)));
    assertTrue(parsed < ITERATIONS, "mutations must break some files");
  }

  /** A small rank file exactly as production writes it (torch's zip layout, our protocol-2 pickle). */
  private byte[] writtenCheckpoint() throws IOException {
    Map<String, Object> model = new LinkedHashMap<>();
    model.put("a.weight", new TorchCheckpointWriter.Tensor(
        new TensorSpec("a", DType.BF16, Shape.of(2, 3), Bytes.of(Bytes.bf16(1, 2, 3, 4, 5, 6)))));
    model.put("b", new TorchCheckpointWriter.Tensor(
        new TensorSpec("b", DType.F32, Shape.of(2), Bytes.of(Bytes.f32(7, 8)))));
    Map<String, Object> root = new LinkedHashMap<>();
    root.put("model", model);
    root.put("checkpoint_version", 3.0);
    root.put("iteration", 1);
    Path f = dir.resolve("seed.pt");
    try (FileChannel ch = FileChannel.open(f, StandardOpenOption.CREATE, StandardOpenOption.WRITE)) {
      TorchCheckpointWriter.write(ch, "archive", root);
    }
    return Files.readAllBytes(f);
  }

  @Test
  void torchZipAndPickle() throws IOException {
    int parsed = fuzz("torch zip", writtenCheckpoint(), 7, in -> {
      TorchCheckpointReader r = TorchCheckpointReader.read("fuzz.pt", new ByteArrayRangeReader("fuzz", in));
      if (r.root() instanceof Map && ((Map<?, ?>) r.root()).get("model") instanceof Map) {
        for (Map.Entry<String, PickleReader.TorchTensor> e : r.tensors("model").entrySet()) {
          r.locate(e.getKey(), e.getValue());
        }
      }
    });
    // flips inside tensor data or padding leave a readable file; the rest must be refused with a message
    assertTrue(parsed > 0 && parsed < ITERATIONS, parsed + " of " + ITERATIONS + " mutants parsed");
  }

  @Test
  void picklesAlone() throws IOException {
    writtenCheckpoint();
    byte[] pkl;
    try (ZipFile zip = new ZipFile(dir.resolve("seed.pt").toFile())) {
      pkl = zip.getInputStream(zip.getEntry("archive/data.pkl")).readAllBytes();
    }
    int parsed = fuzz("pickle", pkl, 11, in -> PickleReader.read("fuzz.pkl", in));
    // a flipped bit inside a key or a value still makes a valid pickle
    assertTrue(parsed > 0 && parsed < ITERATIONS, parsed + " of " + ITERATIONS + " mutants parsed");
  }
}
