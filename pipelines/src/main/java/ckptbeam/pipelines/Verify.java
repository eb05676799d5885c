package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.ComparingChannel;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import ckptbeam.transforms.CheckpointCommit;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.HfNames;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.OutputRecords;
import ckptbeam.transforms.RankFile;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * {@code ckptbeam verify}: (a) {@code --load-dir OUT} re-hashes every file a conversion wrote against its manifest;
 * (b) {@code --hf H --mcore S [layout flags]} proves that two checkpoints hold the same model under a layout: every
 * mcore tensor equals, byte for byte, what the spec assigns to it from the HF tensors (replicated copies included),
 * and every HF tensor is used unless the spec drops it. Streams; memory stays bounded. Works on checkpoints written
 * by other tools too.
 */
final class Verify {
  private static final int MAX_REPORTED = 20;

  private Verify() {}

  static Args flags() {
    return LayoutFlags.define(new Args()
        .value("load-dir").help("DIR", "Re-hash every file a conversion wrote against its ckptbeam-manifest.json.")
        .value("hf").help("DIR", "With --mcore: the HF checkpoint the mcore one should hold.")
        .value("mcore").help("DIR", "With --hf: the mcore checkpoint (any tool's output), written with the --source-* "
            + "layout."), "source");
  }

  /** Returns the number of problems found (0: verified). */
  static int run(String[] argv, PrintStream out) throws Exception {
    Args a = flags().parse(argv);
    a.noBeamArgs("verify");
    if (a.has("load-dir")) {
      return manifest(Cli.absolute(a.get("load-dir")), out);
    }
    if (a.has("hf") && a.has("mcore")) {
      return layout(Cli.absolute(a.get("hf")), Cli.absolute(a.get("mcore")), LayoutFlags.parse(a, "source"), out);
    }
    throw new IllegalArgumentException("verify needs --load-dir OUT, or --hf H --mcore S with the layout flags");
  }

  static int manifest(String dir, PrintStream out) throws IOException {
    String path = CheckpointFiles.resolve(dir, CheckpointCommit.MANIFEST);
    if (!CheckpointFiles.exists(path)) {
      throw new IOException(path + ": no manifest (not written by ckptbeam, or the conversion did not finish)");
    }
    OutputRecords.Manifest m = OutputRecords.read(CheckpointFiles.readSmallFile(path, 1L << 30),
        OutputRecords.Manifest.class);
    List<String> problems = new ArrayList<>();
    int files = 0;
    for (OutputRecords.FileEntry f : m.files()) {
      String rel = f.path();
      String file = CheckpointFiles.resolve(dir, rel);
      long size = CheckpointFiles.sizeOrMissing(file);
      if (size < 0) {
        problems.add(rel + ": missing");
      } else if (size != f.size()) {
        problems.add(rel + ": " + size + " bytes, the manifest says " + f.size());
      } else if (!Sha256.ofFile(file).equals(f.sha256())) {
        problems.add(rel + ": SHA-256 differs from the manifest");
      }
      files++;
    }
    problems.addAll(unlisted(dir, m));
    return report(out, problems, files + " file(s) match " + CheckpointCommit.MANIFEST);
  }

  /**
   * Files in the output that look like checkpoint content (rank files, shards, an index or a tracker) and that the
   * manifest does not list: another conversion's leftovers or an added file change what a reader sees (the layout a
   * trainer finds, the tensors an HF loader finds), so they fail verification. The completion marker of the
   * manifest's own command is not listed (it is written after the manifest) and is expected.
   */
  static List<String> unlisted(String dir, OutputRecords.Manifest manifest) throws IOException {
    TreeSet<String> listed = new TreeSet<>();
    manifest.files().forEach(f -> listed.add(f.path()));
    String command = String.valueOf(manifest.command());
    boolean mcoreOutput = command.equals("hf2mcore") || command.equals("mcore2mcore");
    listed.add(mcoreOutput ? McoreTracker.FILE_NAME : SafetensorsIndex.FILE_NAME);
    List<String> problems = new ArrayList<>();
    for (String rel : CheckpointFiles.list(dir)) {
      if (!listed.contains(rel) && looksLikeCheckpointContent(rel)) {
        problems.add(rel + ": not in the manifest (checkpoint content this conversion did not write)");
      }
    }
    return problems;
  }

  static boolean looksLikeCheckpointContent(String rel) {
    String name = rel.substring(rel.lastIndexOf('/') + 1);
    return name.endsWith(".pt") || name.endsWith(".pth") || name.endsWith(".bin") || name.endsWith(".safetensors")
        || name.endsWith(".index.json") || name.equals(McoreTracker.FILE_NAME);
  }

  static int layout(String hfDir, String mcoreDir, LayoutOptions layout, PrintStream out) throws IOException {
    ModelConfig cfg = ModelConfig.read(CheckpointFiles.resolve(hfDir, "config.json"));
    Hf2McorePlan plan = new Hf2McorePlan(cfg, layout.resolve(cfg));
    SafetensorsIndex index = SafetensorsIndex.read(hfDir);
    Map<String, TensorLocation> hf = new HashMap<>();
    for (String shard : index.shards()) {
      for (TensorLocation t : SafetensorsHeader.read(CheckpointFiles.resolve(hfDir, shard)).tensors()) {
        hf.put(t.name(), t);
      }
    }
    String iteration = McoreTracker.iterationDir(mcoreDir);
    List<String> problems = new ArrayList<>();
    TreeSet<String> unused = new TreeSet<>(index.weightMap().keySet());
    int tensors = 0;
    try (TensorAssembler assembler = new TensorAssembler()) {
      for (RankFile f : plan.rankFiles()) {
        String path = CheckpointFiles.resolve(mcoreDir, iteration + "/" + f.dirName() + "/" + RankFile.FILE_NAME);
        if (!CheckpointFiles.exists(path)) {
          problems.add(path + ": rank file missing");
          continue;
        }
        TorchCheckpointReader reader = TorchCheckpointReader.open(path);
        try (RangeReader bytes = CheckpointFiles.open(path)) {
          for (Map.Entry<String, List<AssembledTensor>> chunk : plan.contents(f).entrySet()) {
            Map<String, PickleReader.TorchTensor> present = reader.tensors(chunk.getKey());
            for (AssembledTensor t : chunk.getValue()) {
              unused.removeAll(t.sources());
              String where = f.dirName() + "/" + chunk.getKey() + "/" + t.key();
              PickleReader.TorchTensor found = present.get(t.key());
              if (found == null) {
                problems.add(where + ": missing");
                continue;
              }
              TensorLocation loc = reader.locate(t.key(), found);
              DType want = TensorAssembler.dtypeOf(t, hf);
              if (loc.dtype() != want || !loc.shape().equals(t.shape())) {
                problems.add(where + ": " + loc.dtype() + loc.shape() + ", the spec gives " + want + t.shape());
                continue;
              }
              ComparingChannel cmp = new ComparingChannel(bytes, loc.offset());
              assembler.write(t, hf, cmp);
              if (cmp.firstDifference() >= 0) {
                problems.add(where + ": differs from the HF input first at element "
                    + cmp.firstDifference() / loc.dtype().size());
              }
              tensors++;
            }
          }
        }
      }
    }
    for (String name : unused) {
      if (!droppedBySpec(name, cfg, plan)) {
        problems.add(name + ": an HF tensor the mcore checkpoint does not hold");
      }
    }
    return report(out, problems, plan.rankFiles().size() + " rank file(s), " + tensors
        + " tensors equal the HF input under this layout");
  }

  /** The tensors HF → mcore leaves out by design (docs/mapping.md §2.1, §3.8, §4.1). */
  private static boolean droppedBySpec(String name, ModelConfig cfg, Hf2McorePlan plan) {
    int layer = HfNames.layerOf(name);
    if (name.endsWith("_scale_inv") || name.endsWith("shared_head.head.weight")) {
      return true;
    }
    if (layer >= cfg.hiddenLayers) {
      return layer - cfg.hiddenLayers >= plan.options().mtpLayers() || name.endsWith(".embed_tokens.weight");
    }
    return layer >= 0; // a decoder layer the layout does not take (fewer layers, or skipped dense ones)
  }

  private static int report(PrintStream out, List<String> problems, String ok) {
    if (problems.isEmpty()) {
      out.println("verified: " + ok);
      return 0;
    }
    problems.stream().limit(MAX_REPORTED).forEach(p -> out.println("DIFFERENCE " + p));
    if (problems.size() > MAX_REPORTED) {
      out.println("... and " + (problems.size() - MAX_REPORTED) + " more");
    }
    out.println("verification FAILED: " + problems.size() + " problem(s)");
    return problems.size();
  }
}
