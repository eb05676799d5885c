package ckptbeam.transforms;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * A plan whose targets are HF safetensors shards, each a list of tensors assembled from rank-file tensors (mcore →
 * HF, LoRA export): what the targets need, how to write them, the index that names them.
 */
public abstract class HfShardsPlan implements ConversionPlanner.IndexedPlan {
  private static final long serialVersionUID = 1L;

  /** The HF → mcore plan of the layout the rank files were written with. */
  final Hf2McorePlan forward;
  /** The folder the tracker names ({@code iter_0000001}, {@code release}), relative to the load dir. */
  final String iterationDir;

  @Override
  public ModelConfig modelConfig() {
    return forward.config();
  }

  HfShardsPlan(Hf2McorePlan forward, String iterationDir) {
    this.forward = forward;
    this.iterationDir = iterationDir;
  }

  /** The rank file paths to read, relative to the load dir. */
  public List<String> rankFiles() {
    List<String> out = new ArrayList<>();
    for (RankFile f : rankFilesRead()) {
      out.add(rankPath(f));
    }
    return out;
  }

  /**
   * The rank files read, in the layout's order: every one, except for DeepSeek-V4 at expert-TP 1 with tp and ep both
   * above 1 (docs/mapping.md §11.4). There every (tp, ep) pair gets a file, but MindSpeed's trainer and its mcore2hf
   * use only the pairs of its {@code get_etp_valid_ckpts_list}, which between them hold every tensor: (e mod tp, e)
   * for each ep rank e when tp divides ep, (t, t mod ep) for each tp rank t when ep divides tp. A checkpoint the
   * trainer saved has only those files, so the others are neither required nor read.
   */
  public List<RankFile> rankFilesRead() {
    LayoutOptions o = forward.options();
    int tp = o.tp();
    int ep = o.ep();
    boolean pairsOnly = forward.config().v4() && o.expertTensorParallel() <= 1 && tp > 1 && ep > 1
        && (ep % tp == 0 || tp % ep == 0);
    if (!pairsOnly) {
      return forward.rankFiles();
    }
    List<RankFile> out = new ArrayList<>();
    for (RankFile f : forward.rankFiles()) {
      boolean used = ep % tp == 0 ? f.tpRank == f.epRank % tp : f.epRank == f.tpRank % ep;
      if (used) {
        out.add(f);
      }
    }
    return out;
  }

  public String rankPath(RankFile f) {
    return iterationDir + "/" + f.dirName() + "/" + RankFile.FILE_NAME;
  }

  /** HF shard file → its tensors. */
  public abstract Map<String, List<AssembledTensor>> files();

  /** Shape of every source (rank-file tensor) by name. */
  abstract Map<String, Shape> sourceShapes();

  @Override
  public List<AssembledTensor> tensorsOf(String target) {
    return files().get(target);
  }

  @Override
  public List<String> targets() {
    return new ArrayList<>(files().keySet());
  }

  @Override
  public Map<String, Shape> sourcesOf(String target) {
    Map<String, Shape> shapes = sourceShapes();
    Map<String, Shape> out = new LinkedHashMap<>();
    for (AssembledTensor t : files().get(target)) {
      t.sources().forEach(s -> out.put(s, shapes.get(s)));
    }
    return out;
  }

  @Override
  public WrittenFile write(String target, Map<String, TensorLocation> sources, String saveDir,
      PipelineOptions storage) throws IOException {
    return HfShardWriter.write(target, files().get(target), sources, saveDir, storage);
  }

  /** Every tensor → its file, in file order. */
  public Map<String, String> weightMap() {
    Map<String, String> out = new LinkedHashMap<>();
    files().forEach((file, tensors) -> tensors.forEach(t -> out.put(t.key(), file)));
    return out;
  }

  /** The index (indented by 4, as the reference writes it) with the total size of what was written. */
  @Override
  public byte[] indexJson(long totalSize) {
    return new SafetensorsIndex(weightMap(), totalSize).toJson(4);
  }
}
