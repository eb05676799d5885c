package ckptbeam.transforms;

import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * Where a conversion's sources are, found in three steps so that a pipeline can spread the reading: the input files
 * to read ({@link #files}), what each one holds ({@link #locate}, one file, on any worker), and every source by
 * name with the checks that need all files ({@link #assemble}). Reads headers and pickles only, never tensor bytes.
 */
public interface InputSources {
  /** The files to read, each on its own, in a deterministic order. */
  List<SourceFile> files();

  /** What one of {@link #files} holds. */
  LocatedFile locate(SourceFile file) throws IOException;

  /** Every source by name, from every file located (in any order), after the checks across files. */
  Located assemble(List<LocatedFile> files) throws IOException;

  /** Every source of a conversion by name, and what the user should know about the input (not errors). */
  record Located(Map<String, TensorLocation> byName, List<String> notes) {
    public Located {
      notes = List.copyOf(notes);
    }
  }
}
