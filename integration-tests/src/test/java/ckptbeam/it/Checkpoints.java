package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleAudit;
import ckptbeam.pipelines.Main;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.stream.Collectors;
import java.util.stream.Stream;
import java.util.zip.ZipEntry;
import java.util.zip.ZipFile;
import org.junit.jupiter.api.Assertions;

/** Running the CLI in-process and looking at what it wrote. */
final class Checkpoints {
  private Checkpoints() {}

  /** Exit code and the two output streams of one in-process CLI run. */
  static final class Run {
    final int exit;
    final String out;
    final String err;

    Run(int exit, String out, String err) {
      this.exit = exit;
      this.out = out;
      this.err = err;
    }

    @Override
    public String toString() {
      return "exit " + exit + "\nstdout: " + out + "\nstderr: " + err;
    }
  }

  static Run cli(String... args) {
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    ByteArrayOutputStream err = new ByteArrayOutputStream();
    int exit = Main.run(args, new PrintStream(out, true, StandardCharsets.UTF_8),
        new PrintStream(err, true, StandardCharsets.UTF_8));
    return new Run(exit, out.toString(StandardCharsets.UTF_8), err.toString(StandardCharsets.UTF_8));
  }

  /**
   * The test models, made once per folder: "tiny" (4 layers, 1 dense, 8 experts, 1 MTP), "deep" (6 layers, 3 dense,
   * 2 MTP), "full61" (DeepSeek-V3's 61 layers, 3 dense, 1 MTP, at tiny width).
   */
  static Map<String, Path> standardModels(Path dir) {
    Map<String, Path> m = new LinkedHashMap<>();
    m.put("tiny", tinyModel(dir.resolve("tiny")));
    m.put("deep", tinyModel(dir.resolve("deep"), "--layers", "6", "--first-k-dense", "3", "--mtp-layers", "2",
        "--shards", "4"));
    m.put("full61", tinyModel(dir.resolve("full61"), "--layers", "61", "--first-k-dense", "3", "--hidden-size", "32",
        "--vocab-size", "64", "--intermediate-size", "64", "--moe-intermediate-size", "16", "--q-lora-rank", "16",
        "--kv-lora-rank", "8", "--qk-nope-head-dim", "8", "--qk-rope-head-dim", "4", "--v-head-dim", "8", "--shards",
        "8"));
    return m;
  }

  static Path tinyModel(Path dir, String... sizeFlags) {
    List<String> args = new ArrayList<>(List.of("make-tiny-model", "--out", dir.toString()));
    args.addAll(List.of(sizeFlags));
    Run r = cli(args.toArray(new String[0]));
    assertEquals(0, r.exit, r.toString());
    return dir;
  }

  /** A copy of the folder {@code from} (every file, at any depth) at {@code to}, to damage or edit; returns {@code to}. */
  static Path copyTree(Path from, Path to) throws IOException {
    try (Stream<Path> s = Files.walk(from)) {
      for (Path p : s.toList()) {
        Path t = to.resolve(from.relativize(p).toString());
        if (Files.isDirectory(p)) {
          Files.createDirectories(t);
        } else {
          Files.copy(p, t);
        }
      }
    }
    return to;
  }

  /** Every regular file under {@code dir}, relative path → bytes. */
  static TreeMap<String, byte[]> contents(Path dir) throws IOException {
    TreeMap<String, byte[]> out = new TreeMap<>();
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.filter(Files::isRegularFile).collect(Collectors.toList())) {
        out.put(dir.relativize(p).toString(), Files.readAllBytes(p));
      }
    }
    return out;
  }

  /** Every tensor of an HF checkpoint folder (its shards), name → its bytes. */
  static TreeMap<String, byte[]> hfTensors(Path dir) throws IOException {
    TreeMap<String, byte[]> out = new TreeMap<>();
    try (Stream<Path> s = Files.list(dir)) {
      for (Path shard : s.filter(p -> p.toString().endsWith(".safetensors")).toList()) {
        byte[] file = Files.readAllBytes(shard);
        for (TensorLocation t : SafetensorsHeader.read(shard.toString()).tensors()) {
          long bytes = t.shape().numel() * t.dtype().size();
          out.put(t.name(), java.util.Arrays.copyOfRange(file, (int) t.offset(), (int) (t.offset() + bytes)));
        }
      }
    }
    return out;
  }

  /** {@link #contents} without the manifest, which records the input and options and so differs between inputs. */
  static TreeMap<String, byte[]> dataContents(Path dir) throws IOException {
    TreeMap<String, byte[]> out = contents(dir);
    out.remove("ckptbeam-manifest.json");
    return out;
  }

  /**
   * Same files with the same bytes; the manifests too when {@code withManifest} (they record the input folder, so
   * only runs that read the same folder have equal ones).
   */
  static void assertSameFiles(Path expected, Path actual, boolean withManifest) throws IOException {
    TreeMap<String, byte[]> a = withManifest ? contents(expected) : dataContents(expected);
    TreeMap<String, byte[]> b = withManifest ? contents(actual) : dataContents(actual);
    assertEquals(a.keySet(), b.keySet());
    for (Map.Entry<String, byte[]> e : a.entrySet()) {
      Assertions.assertArrayEquals(e.getValue(), b.get(e.getKey()), e.getKey());
    }
  }

  /** Audits the pickle of every .pt under {@code dir} against torch's weights-only allowlist; returns the count. */
  static int auditWeightsOnly(Path dir) throws IOException {
    int files = 0;
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path p : s.filter(f -> f.toString().endsWith(".pt")).collect(Collectors.toList())) {
        try (ZipFile zip = new ZipFile(p.toFile())) {
          ZipEntry first = zip.entries().nextElement();
          String prefix = first.getName().substring(0, first.getName().indexOf('/'));
          byte[] pkl = zip.getInputStream(zip.getEntry(prefix + "/data.pkl")).readAllBytes();
          PickleAudit.Report r = PickleAudit.audit(pkl);
          assertTrue(r.ok(), p + ": " + r);
          assertEquals(2, r.protocol);
          assertTrue(!r.globals.contains("collections.defaultdict") && !r.globals.contains("argparse.Namespace"));
          assertTrue(zip.getEntry(prefix + "/version") != null, p + " lacks its version record");
        }
        files++;
      }
    }
    return files;
  }
}
