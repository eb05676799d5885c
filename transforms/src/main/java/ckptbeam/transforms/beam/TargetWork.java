package ckptbeam.transforms.beam;

import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.ConversionPlan;
import java.io.Serializable;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One target file to write, as the plan step hands it to a writer: which conversion it belongs to, its path, the
 * conversion's plan (small: the config and options, from which the writer recomputes this file's contents) and where
 * each of its sources is. A description only: the writer streams the bytes.
 */
final class TargetWork implements Serializable {
  private static final long serialVersionUID = 1L;

  /** The conversion's key: its save dir. */
  final String conversion;
  final String saveDir;
  /** The file's path relative to the save dir. */
  final String target;
  final ConversionPlan plan;
  final LinkedHashMap<String, TensorLocation> sources;
  /** The conversion's fingerprint, recorded with the finished file for {@code --resume}. */
  final String fingerprint;
  final boolean resume;

  TargetWork(String conversion, String saveDir, String target, ConversionPlan plan, Map<String, TensorLocation> sources,
      String fingerprint, boolean resume) {
    this.conversion = conversion;
    this.saveDir = saveDir;
    this.target = target;
    this.plan = plan;
    this.sources = new LinkedHashMap<>(sources);
    this.fingerprint = fingerprint;
    this.resume = resume;
  }

  @Override
  public String toString() {
    return saveDir + "/" + target + " (" + sources.size() + " sources)";
  }
}
