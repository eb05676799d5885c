package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.beam.WrittenFile;
import java.io.IOException;
import java.io.Serializable;
import java.nio.charset.StandardCharsets;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;

/**
 * The last step of a conversion, once every data file is written: copies the small side files (config, tokenizer),
 * writes generated small files, the manifest, and then the completion marker (the tracker file or the index). Until
 * the marker is written nothing in the output looks complete.
 */
public final class CheckpointCommit implements Serializable {
  private static final long serialVersionUID = 1L;
  public static final String MANIFEST = "ckptbeam-manifest.json";

  /**
   * Whether a file (relative path) is checkpoint content, weights or what indexes them (torch, safetensors, an index,
   * the mcore tracker), rather than a side file: such files are not copied as side files, and a checkpoint's own are
   * listed in its manifest.
   */
  public static boolean looksLikeCheckpointContent(String rel) {
    String name = rel.substring(rel.lastIndexOf('/') + 1);
    return name.endsWith(".pt") || name.endsWith(".pth") || name.endsWith(".bin") || name.endsWith(".safetensors")
        || name.endsWith(".index.json") || name.equals(ckptbeam.io.torch.McoreTracker.FILE_NAME);
  }

  /** The content of the completion marker, given every file written (sorted). */
  @FunctionalInterface
  public interface Marker extends Serializable {
    byte[] content(List<WrittenFile> written) throws IOException;
  }

  private final String saveDir;
  private final List<String> expected;
  private final LinkedHashMap<String, String> sideFiles;
  private final LinkedHashMap<String, byte[]> generated;
  private final String markerName;
  private final Marker marker;
  private final OutputRecords.Manifest manifestHeader;

  /**
   * @param expected relative paths of every data file the conversion must write
   * @param sideFiles source path → path relative to the save dir, copied before the marker
   * @param generated small files made while planning (path relative to the save dir → content)
   * @param markerName the marker's path relative to the save dir, written last
   * @param manifestHeader the manifest's JSON object (tool, options, input identity) to which every written file's
   *     size, SHA-256 and tensors are added under {@code "files"}
   */
  public CheckpointCommit(String saveDir, List<String> expected, Map<String, String> sideFiles,
      Map<String, byte[]> generated, String markerName, Marker marker, OutputRecords.Manifest manifestHeader) {
    this.saveDir = saveDir;
    this.expected = List.copyOf(expected);
    this.sideFiles = new LinkedHashMap<>(sideFiles);
    this.generated = new LinkedHashMap<>(generated);
    this.markerName = markerName;
    this.marker = marker;
    this.manifestHeader = manifestHeader;
  }

  /** The tracker file of an mcore checkpoint, naming {@code iteration}. */
  public static Marker tracker(int iteration) {
    byte[] content = Integer.toString(iteration).getBytes(StandardCharsets.US_ASCII);
    return written -> content.clone();
  }

  /** Every data file the conversion writes, relative to the save dir. */
  public List<String> expected() {
    return expected;
  }

  public String markerName() {
    return markerName;
  }

  /** Every file of a complete output: data files, side and generated files, the manifest and the marker. */
  public List<String> allFiles() {
    List<String> out = new ArrayList<>(expected);
    out.addAll(sideFiles.values());
    out.addAll(generated.keySet());
    out.add(MANIFEST);
    out.add(markerName);
    return out;
  }

  /**
   * Commits {@code files}, which must be every expected file: side files, generated files, the manifest (with the
   * conversion's {@code notes}), marker; then the per-file progress records, which the manifest now holds, are
   * removed.
   */
  public void commit(List<WrittenFile> files, List<String> notes) throws IOException {
    List<WrittenFile> list = new ArrayList<>(files);
    TreeSet<String> missing = new TreeSet<>(expected);
    list.forEach(f -> missing.remove(f.relativePath));
    if (!missing.isEmpty()) {
      throw new IOException("conversion incomplete: " + missing.size() + " file(s) were not written, e.g. "
          + missing.first() + "; no completion marker written");
    }
    for (Map.Entry<String, String> side : sideFiles.entrySet()) {
      CheckpointFiles.copyFile(side.getKey(), CheckpointFiles.resolve(saveDir, side.getValue()));
    }
    for (Map.Entry<String, byte[]> g : generated.entrySet()) {
      CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(saveDir, g.getKey()), g.getValue());
    }
    list.sort(null);
    List<OutputRecords.FileEntry> entries = new ArrayList<>();
    list.forEach(f -> entries.add(OutputRecords.FileEntry.of(f)));
    CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(saveDir, MANIFEST),
        OutputRecords.write(manifestHeader.with(notes, entries)));
    CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(saveDir, markerName), marker.content(list));
    List<String> records = new ArrayList<>();
    for (WrittenFile f : list) {
      records.add(ProgressRecord.path(saveDir, f.relativePath));
    }
    CheckpointFiles.deleteIfExists(records); // the manifest now holds what they held
    String progress = CheckpointFiles.resolve(saveDir, ProgressRecord.DIR);
    if (CheckpointFiles.isLocal(progress)) {
      try {
        Files.deleteIfExists(Paths.get(progress));
      } catch (DirectoryNotEmptyException e) {
        // records of another run's targets: leave them
      }
    }
  }
}
