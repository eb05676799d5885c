package ckptbeam.pipelines;

import java.util.List;
import org.apache.beam.sdk.Pipeline;

/**
 * A conversion checked against its input and built into a pipeline, not yet run (null when there is nothing to do):
 * where it writes and every file of the complete output, relative to the save dir.
 */
final class Built {
  final Pipeline pipeline;
  final String saveDir;
  final List<String> files;
  /** The data files alone, and about how many bytes they take (0: unknown), for progress. */
  final List<String> dataFiles;
  final long plannedBytes;
  /** The notes printed before the job (the manifest may record more, found while reading the input). */
  final List<String> notesShown;

  Built(Pipeline pipeline, String saveDir, List<String> files, List<String> dataFiles, long plannedBytes,
      List<String> notesShown) {
    this.notesShown = List.copyOf(notesShown);
    this.pipeline = pipeline;
    this.saveDir = saveDir;
    this.files = List.copyOf(files);
    this.dataFiles = List.copyOf(dataFiles);
    this.plannedBytes = plannedBytes;
  }
}
