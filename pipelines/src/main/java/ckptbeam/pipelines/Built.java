package ckptbeam.pipelines;

import ckptbeam.transforms.beam.CommitCheckpoint;
import java.util.List;
import org.apache.beam.sdk.Pipeline;

/**
 * A conversion checked against its input and built into a pipeline, not yet run: where it writes, the data files it
 * will write (relative to the save dir) and the marker file that, written last, says the output is complete.
 */
final class Built {
  final Pipeline pipeline;
  final String saveDir;
  final List<String> expected;
  final String marker;

  Built(Pipeline pipeline, String saveDir, List<String> expected, String marker) {
    this.pipeline = pipeline;
    this.saveDir = saveDir;
    this.expected = expected;
    this.marker = marker;
  }

  /** Every file of a complete output: the data files, the manifest and the marker. */
  List<String> allFiles() {
    return Conversion.withExtras(expected, CommitCheckpoint.MANIFEST, marker);
  }
}
