package ckptbeam.transforms;

import ckptbeam.io.compute.LoraMerge;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;

/**
 * The sources of mcore input: each rank file's pickle (and its {@code --lora-load} counterpart) gives the tensors
 * the layout expects in it, checked against the layout and merged with LoRA factors as they are read; across rank
 * files, the parts of one tensor must share a dtype.
 */
final class RankFileSources implements InputSources {
  private final Mcore2HfPlan plan;
  private final String loadDir;
  private final LoraOptions lora;
  /** Rank-file path → its place in the layout, in the layout's order. */
  private final Map<String, RankFile> byPath = new LinkedHashMap<>();

  RankFileSources(Mcore2HfPlan plan, String loadDir, LoraOptions lora) {
    this.plan = plan;
    this.loadDir = loadDir;
    this.lora = lora;
    for (RankFile rank : plan.rankFilesRead()) {
      byPath.put(CheckpointFiles.resolve(loadDir, plan.rankPath(rank)), rank);
    }
  }

  @Override
  public List<SourceFile> files() {
    List<SourceFile> out = new ArrayList<>();
    byPath.keySet().forEach(p -> out.add(SourceFile.of(p)));
    return out;
  }

  @Override
  public LocatedFile locate(SourceFile file) throws IOException {
    RankFile rank = byPath.get(file.path());
    if (rank == null) {
      throw new IOException(file.path() + ": not a rank file of the layout");
    }
    return SourceLocator.rankFile(plan, rank, loadDir, lora);
  }

  @Override
  public Located assemble(List<LocatedFile> files) throws IOException {
    Map<String, TensorLocation> located = SourceLocator.rankFilesLocated(files);
    if (lora != null && located.values().stream().noneMatch(t -> t.computed() instanceof LoraMerge)) {
      // MindSpeed would silently write the base (V4 spec §8 #19): flags that merge nothing are a mistake
      throw new IOException("--lora-r and --lora-alpha ask for a LoRA merge, but " + (lora.loraDir != null
          ? "the --lora-load checkpoint " + lora.loraDir : "the rank files") + " hold no LoRA factors (lora_A/lora_B) "
          + "for any module the layout converts: nothing to merge; without those flags the base is converted");
    }
    checkReplicas(located);
    return new Located(located, List.of());
  }

  /**
   * The small tensors the layout replicates over tp or ep ranks (norms, biases, sinks, …; up to 512 Ki elements) must
   * be equal in every rank file that holds them: only the first copy is converted, and a checkpoint whose copies
   * drifted apart (a broken save, an edited file) would otherwise lose the others silently (V4 spec §7.2 item 6).
   * Computed sources (merged with LoRA, dequantised NF4) are not compared.
   */
  private void checkReplicas(Map<String, TensorLocation> located) throws IOException {
    List<List<String>> groups = plan.replicas(512 * 1024);
    // each rank file opened once (on gs://, every open is a request)
    Map<String, List<TensorLocation>> byFile = new TreeMap<>();
    for (List<String> group : groups) {
      for (String name : group) {
        TensorLocation loc = located.get(name);
        if (loc != null && loc.computed() == null) {
          byFile.computeIfAbsent(loc.file(), f -> new ArrayList<>()).add(loc);
        }
      }
    }
    Map<String, String> digests = new HashMap<>();
    for (Map.Entry<String, List<TensorLocation>> file : byFile.entrySet()) {
      try (RangeReader r = CheckpointFiles.open(file.getKey())) {
        for (TensorLocation loc : file.getValue()) {
          byte[] bytes = new byte[Math.toIntExact(loc.shape().numel() * loc.dtype().size())];
          r.readFully(loc.offset(), ByteBuffer.wrap(bytes));
          digests.put(loc.name(), Sha256.of(bytes));
        }
      }
    }
    for (List<String> group : groups) {
      String first = null;
      for (String name : group) {
        if (!digests.containsKey(name)) {
          continue;
        }
        if (first == null) {
          first = name;
        } else if (!digests.get(first).equals(digests.get(name))) {
          String key = name.substring(name.indexOf(':') + 1);
          throw new IOException(located.get(name).file() + ": " + key + " differs from its copy in "
              + located.get(first).file() + "; the layout replicates it over the tensor/expert-parallel ranks, so the "
              + "copies must be equal");
        }
      }
    }
  }

}
