package ckptbeam.transforms;

import ckptbeam.io.torch.McoreTracker;
import java.io.Serializable;
import java.util.Objects;

/** One mcore rank file: {@code iter_0000001/mp_rank_TT[_PPP][_EEE]/model_optim_rng.pt} (docs/mapping.md §2.2). */
public final class RankFile implements Serializable, Comparable<RankFile> {
  private static final long serialVersionUID = 1L;
  public static final String FILE_NAME = "model_optim_rng.pt";

  public final int tp;
  public final int pp;
  public final int ep;
  private final String dir;

  public RankFile(int tp, int pp, int ep, int ppSize, int epSize) {
    this.tp = tp;
    this.pp = pp;
    this.ep = ep;
    StringBuilder b = new StringBuilder(String.format("mp_rank_%02d", tp));
    if (ppSize > 1) {
      b.append(String.format("_%03d", pp));
    }
    if (epSize > 1) {
      b.append(String.format("_%03d", ep));
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
