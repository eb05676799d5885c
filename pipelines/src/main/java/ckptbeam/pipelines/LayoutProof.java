package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.ComparingChannel;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.HfNames;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.Mcore2HfPlan;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.RankFile;
import ckptbeam.transforms.TensorMapping;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * {@code verify --hf H --mcore S}: that two checkpoints hold the same model under a layout, one rank file at a time
 * ({@link #checkRankFile}, on any worker: every tensor the spec puts in it, recomputed from the HF shards it reads and
 * compared byte for byte), then every HF tensor used unless the spec drops it ({@link #report}). Pure Java; the verify
 * command spreads the rank files over a pipeline's workers.
 */
final class LayoutProof implements Serializable {
  private static final long serialVersionUID = 1L;
  /** The problems a report names; the rest are counted. */
  static final int MAX_REPORTED = 20;
  private static final ObjectMapper JSON = new ObjectMapper();

  private final String hfDir;
  private final String mcoreDir;
  private final LayoutOptions layout;
  private transient Hf2McorePlan plan;
  private transient SafetensorsIndex index;
  private transient String iteration;
  /** Shard headers read so far by this instance: the rank files of one worker share most shards. */
  private transient Map<String, SafetensorsHeader> headers;

  LayoutProof(String hfDir, String mcoreDir, LayoutOptions layout) {
    this.hfDir = hfDir;
    this.mcoreDir = mcoreDir;
    this.layout = layout;
  }

  /** What verify prints, and how many problems it found (0: verified). */
  record Verdict(List<String> lines, long problems) {
    /** The lines of a verdict: {@code ok} when nothing was found, else the problems shown, how many more, the count. */
    static Verdict of(List<String> shown, long problems, String ok) {
      List<String> lines = new ArrayList<>();
      if (problems == 0) {
        lines.add("verified: " + ok);
        return new Verdict(lines, 0);
      }
      shown.stream().limit(MAX_REPORTED).forEach(s -> lines.add("DIFFERENCE " + s));
      if (problems > Math.min(shown.size(), MAX_REPORTED)) {
        lines.add("... and " + (problems - Math.min(shown.size(), MAX_REPORTED)) + " more");
      }
      lines.add("verification FAILED: " + problems + " problem(s)");
      return new Verdict(lines, problems);
    }

    String toJson() throws IOException {
      return JSON.writeValueAsString(this);
    }

    static Verdict fromJson(byte[] json) throws IOException {
      return JSON.readValue(json, Verdict.class);
    }
  }

  /**
   * What one rank file showed: its first problems and their count, its tensors, the HF tensors it used;
   * {@code absentUnused}: the file is absent and mcore → HF never reads it (its tensors are copies).
   */
  record RankCheck(String rank, List<String> problems, int problemCount, int tensors, List<String> used,
      boolean absentUnused) {
    String toJson() throws IOException {
      return JSON.writeValueAsString(this);
    }

    static RankCheck fromJson(String json) throws IOException {
      return JSON.readValue(json, RankCheck.class);
    }
  }

  Hf2McorePlan plan() throws IOException {
    if (plan == null) {
      ModelConfig read = ModelConfig.read(CheckpointFiles.resolve(hfDir, "config.json"));
      LayoutOptions resolved = layout.resolve(read);
      index = SafetensorsIndex.read(hfDir);
      // as hf2mcore planned it: a Base checkpoint's MTP stage copy comes from its own MTP embedding
      ModelConfig cfg = read.withMtpEmbeddingOf(index.weightMap().keySet(), resolved.mtpLayers());
      plan = new Hf2McorePlan(cfg, resolved);
      iteration = McoreTracker.iterationDir(mcoreDir);
      headers = new LinkedHashMap<>(16, 0.75f, true) {
        @Override
        protected boolean removeEldestEntry(Map.Entry<String, SafetensorsHeader> eldest) {
          return size() > 32;
        }
      };
    }
    return plan;
  }

  /** The rank files of the layout, by directory name, in the layout's order. */
  List<String> rankFiles() throws IOException {
    List<String> out = new ArrayList<>();
    plan().rankFiles().forEach(f -> out.add(f.dirName()));
    return out;
  }

  /**
   * Every tensor the spec puts in one rank file, recomputed from the HF shards and compared byte for byte, with the
   * caller's assembler (one per worker thread: its buffers are reused from rank file to rank file).
   */
  RankCheck checkRankFile(String rankDir, TensorAssembler assembler) throws IOException {
    Hf2McorePlan p = plan();
    RankFile f = p.rankFiles().stream().filter(r -> r.dirName().equals(rankDir)).findFirst()
        .orElseThrow(() -> new IOException(rankDir + ": not a rank file of the layout"));
    List<String> problems = new ArrayList<>();
    int[] count = {0};
    TreeSet<String> used = new TreeSet<>();
    int tensors = 0;
    String path = CheckpointFiles.resolve(mcoreDir, iteration + "/" + f.dirName() + "/" + RankFile.FILE_NAME);
    if (!CheckpointFiles.exists(path)) {
      p.contents(f).values().forEach(chunk -> chunk.forEach(t -> used.addAll(t.sources())));
      // a V4 checkpoint the trainer saved at expert-TP 1 has only the (tp, ep) pairs it uses (docs/mapping.md §11.4)
      boolean unused = !new Mcore2HfPlan(p, iteration).rankFilesRead().contains(f);
      if (!unused) {
        add(problems, count, path + ": rank file missing");
      }
      return new RankCheck(rankDir, problems, count[0], 0, List.copyOf(used), unused);
    }
    TorchCheckpointReader reader = TorchCheckpointReader.open(path);
    try (RangeReader bytes = CheckpointFiles.open(path)) {
      for (Map.Entry<String, List<AssembledTensor>> chunk : p.contents(f).entrySet()) {
        Map<String, PickleReader.TorchTensor> present = reader.tensors(chunk.getKey());
        for (AssembledTensor t : chunk.getValue()) {
          used.addAll(t.sources());
          String where = f.dirName() + "/" + chunk.getKey() + "/" + t.key();
          PickleReader.TorchTensor found = present.get(t.key());
          if (found == null) {
            add(problems, count, where + ": missing");
            continue;
          }
          Map<String, TensorLocation> hf = hfSources(t);
          TensorLocation loc = reader.locate(t.key(), found);
          DType want = TensorAssembler.dtypeOf(t, hf);
          if (loc.dtype() != want || !loc.shape().equals(t.shape())) {
            add(problems, count, where + ": " + loc.dtype() + loc.shape() + ", the spec gives " + want + t.shape());
            continue;
          }
          ComparingChannel cmp = new ComparingChannel(bytes, loc.offset());
          assembler.write(t, hf, cmp);
          if (cmp.firstDifference() >= 0) {
            add(problems, count, where + ": differs from the HF input first at element "
                + cmp.firstDifference() / loc.dtype().size());
          }
          tensors++;
        }
      }
    }
    return new RankCheck(rankDir, problems, count[0], tensors, List.copyOf(used), false);
  }

  /** Where the HF tensors one mcore tensor is built from are, from the headers of the shards the index names. */
  private Map<String, TensorLocation> hfSources(AssembledTensor t) throws IOException {
    Map<String, TensorLocation> out = new HashMap<>();
    for (String name : t.sources()) {
      String shard = index.weightMap().get(name);
      if (shard == null) {
        throw new IOException(CheckpointFiles.resolve(hfDir, SafetensorsIndex.FILE_NAME) + ": the layout needs \""
            + name + "\", which the index does not name");
      }
      SafetensorsHeader header = headers.get(shard);
      if (header == null) {
        header = SafetensorsHeader.read(CheckpointFiles.resolve(hfDir, shard));
        headers.put(shard, header);
      }
      TensorLocation loc = header.tensor(name);
      if (loc == null) {
        throw new IOException(CheckpointFiles.resolve(hfDir, shard) + ": the index places \"" + name + "\" here, but "
            + "the shard does not hold it");
      }
      out.put(name, loc);
    }
    return out;
  }

  private static void add(List<String> problems, int[] count, String problem) {
    if (problems.size() < MAX_REPORTED) {
      problems.add(problem);
    }
    count[0]++;
  }

  /**
   * The verdict from every rank file's check (in any order): their problems in the layout's rank-file order, then
   * the HF tensors no rank file used that the spec does not drop. The lines {@code verify} prints.
   */
  Verdict report(List<RankCheck> checks) throws IOException {
    Hf2McorePlan p = plan();
    Map<String, RankCheck> byRank = new HashMap<>();
    checks.forEach(c -> byRank.put(c.rank(), c));
    List<String> shown = new ArrayList<>();
    long problems = 0;
    int tensors = 0;
    TreeSet<String> unused = new TreeSet<>(index.weightMap().keySet());
    for (RankFile f : p.rankFiles()) {
      RankCheck c = byRank.get(f.dirName());
      if (c == null) {
        throw new IOException(f.dirName() + ": not checked");
      }
      c.problems().stream().limit(MAX_REPORTED - shown.size()).forEach(shown::add);
      problems += c.problemCount();
      tensors += c.tensors();
      unused.removeAll(c.used());
    }
    for (String name : unused) {
      if (!droppedBySpec(name, p)) {
        if (shown.size() < MAX_REPORTED) {
          shown.add(name + ": an HF tensor the mcore checkpoint does not hold");
        }
        problems++;
      }
    }
    long absent = checks.stream().filter(RankCheck::absentUnused).count();
    return Verdict.of(shown, problems, (p.rankFiles().size() - absent) + " rank file(s)" + (absent == 0 ? "" : " ("
        + absent + " more absent: (tp, ep) pairs the trainer does not save, holding copies)") + ", " + tensors
        + " tensors equal the HF input under this layout");
  }

  /** The tensors HF → mcore leaves out by design (docs/mapping.md §2.1, §3.8, §4.1). */
  private static boolean droppedBySpec(String name, Hf2McorePlan plan) {
    ModelConfig cfg = plan.config();
    if (cfg.v4()) {
      // a Base checkpoint's MTP head is never converted, nor its MTP embedding at pp 1 (docs/mapping.md §11.8)
      int layer = HfNames.layerOf(cfg, name);
      return layer >= cfg.hiddenLayers && (layer - cfg.hiddenLayers >= plan.options().mtpLayers()
          || name.endsWith("." + TensorMapping.V4_BASE_MTP_HEAD)
          || name.endsWith("." + TensorMapping.V4_BASE_MTP_EMBED));
    }
    int layer = HfNames.layerOf(name);
    if (name.endsWith("_scale_inv") || name.endsWith("shared_head.head.weight")) {
      return true;
    }
    if (layer >= cfg.hiddenLayers) {
      return layer - cfg.hiddenLayers >= plan.options().mtpLayers() || name.endsWith(".embed_tokens.weight");
    }
    return layer >= 0; // a decoder layer the layout does not take (fewer layers, or skipped dense ones)
  }
}
