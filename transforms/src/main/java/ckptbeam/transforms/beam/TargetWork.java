package ckptbeam.transforms.beam;

import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.ConversionRequest;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * One target file to write, as the plan step hands it to a writer: which conversion it belongs to (its request,
 * from which the writer derives the plan again: {@code ConversionPlanner.derive}), its path, where each of its sources
 * is, and the conversion's fingerprint (the writer checks that the plan it derives is the one planned). A
 * description only: the writer streams the bytes. Encoded by {@link ConversionCoders.TargetWorkCoder}.
 */
final class TargetWork {
  /** The conversion's key: its save dir. */
  final String conversion;
  final ConversionRequest request;
  /** The file's path relative to the save dir. */
  final String target;
  /** Source name → location, in the plan's order. */
  final Map<String, TensorLocation> sources;
  /** The conversion's fingerprint, recorded with the finished file for {@code --resume}. */
  final String fingerprint;

  TargetWork(String conversion, ConversionRequest request, String target, Map<String, TensorLocation> sources,
      String fingerprint) {
    this.conversion = conversion;
    this.request = request;
    this.target = target;
    this.sources = Collections.unmodifiableMap(new LinkedHashMap<>(sources));
    this.fingerprint = fingerprint;
  }

  String saveDir() {
    return request.saveDir();
  }

  /** Whether a file an earlier attempt finished may be kept. */
  boolean resume() {
    return request.existingOutput() == ConversionRequest.ExistingOutput.RESUME;
  }

  @Override
  public String toString() {
    return saveDir() + "/" + target + " (" + sources.size() + " sources)";
  }
}
