package ckptbeam.transforms;

import ckptbeam.io.torch.McoreTracker;
import java.io.Serializable;
import java.util.Objects;

/** One mcore rank file: {@code iter_0000001/mp_rank_TT[_PPP][_EEE]/model_optim_rng.pt} (docs/mapping.md §2.2). */
public final class RankFile implements Serializable, Comparable<RankFile> {
  private static final long serialVersionUID = 1L;
  public static final String FILE_NAME = "model_optim_rng.pt";

  /** This file's tensor-, pipeline- and expert-parallel ranks (the layout's sizes are {@link LayoutOptions}'). */
  public final int tpRank;
  public final int ppRank;
  public final int epRank;
  private final String dir;

  /** The pp part of the name is written only when ppSize > 1, the ep part only when epSize > 1. */
  public RankFile(int tpRank, int ppRank, int epRank, int ppSize, int epSize) {
    this.tpRank = tpRank;
    this.ppRank = ppRank;
    this.epRank = epRank;
    StringBuilder b = new StringBuilder(String.format("mp_rank_%02d", tpRank));
    if (ppSize > 1) {
      b.append(String.format("_%03d", ppRank));
    }
    if (epSize > 1) {
      b.append(String.format("_%03d", epRank));
    }
    this.dir = b.toString();
  }

  /** The rank directory name, e.g. {@code mp_rank_01_003_007}. */
  public String dirName() {
    return dir;
  }

  /** Path of the file relative to the save dir, e.g. {@code iter_0000001/mp_rank_00/model_optim_rng.pt}. */
  public String relativePath(int iteration) {
    return iterationDir(iteration) + "/" + dir + "/" + FILE_NAME;
  }

  public static String iterationDir(int iteration) {
    return McoreTracker.iterationDir(iteration);
  }

  @Override
  public int compareTo(RankFile o) {
    return dir.compareTo(o.dir);
  }

  @Override
  public boolean equals(Object o) {
    return o instanceof RankFile && dir.equals(((RankFile) o).dir);
  }

  @Override
  public int hashCode() {
    return Objects.hash(dir);
  }

  @Override
  public String toString() {
    return dir;
  }
}
