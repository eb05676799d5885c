package ckptbeam.transforms.beam;

import ckptbeam.io.CheckpointFiles;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Values;
import org.apache.beam.sdk.transforms.WithKeys;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.values.PCollection;

/**
 * The last step of a conversion: once every expected data file is written, copies the small side files (config,
 * tokenizer) and then writes the completion marker (the tracker file or the index). Until then nothing in the
 * output looks complete. Emits the list of written files, sorted.
 */
public final class CommitCheckpoint extends PTransform<PCollection<WrittenFile>, PCollection<List<WrittenFile>>> {
  /** The content of the completion marker, given every file written (sorted). */
  @FunctionalInterface
  public interface Marker extends java.io.Serializable {
    byte[] content(List<WrittenFile> written) throws IOException;
  }

  private final String saveDir;
  private final List<String> expected;
  private final Map<String, String> sideFiles;
  private final Map<String, byte[]> generated;
  private final String markerName;
  private final Marker marker;
  private final byte[] manifestHeader;

  /**
   * @param expected relative paths of every data file the conversion must write
   * @param sideFiles source path → path relative to the save dir, copied before the marker
   * @param generated small files made by the driver (path relative to the save dir → content), written before the
   *     marker
   * @param markerName the marker's path relative to the save dir, written last
   */
  public CommitCheckpoint(String saveDir, List<String> expected, Map<String, String> sideFiles,
      Map<String, byte[]> generated, String markerName, Marker marker) {
    this.saveDir = saveDir;
    this.expected = List.copyOf(expected);
    this.sideFiles = new java.util.LinkedHashMap<>(sideFiles);
    this.generated = new java.util.LinkedHashMap<>(generated);
    this.markerName = markerName;
    this.marker = marker;
    this.manifestHeader = null;
  }

  private CommitCheckpoint(CommitCheckpoint c, byte[] manifestHeader) {
    this.saveDir = c.saveDir;
    this.expected = c.expected;
    this.sideFiles = c.sideFiles;
    this.generated = c.generated;
    this.markerName = c.markerName;
    this.marker = c.marker;
    this.manifestHeader = manifestHeader.clone();
  }

  public static final String MANIFEST = "ckptbeam-manifest.json";

  /**
   * Also writes {@value #MANIFEST} before the marker: {@code header} (a JSON object: tool, options, input identity)
   * with every written file's size, SHA-256 and tensors added under {@code "files"}.
   */
  public CommitCheckpoint withManifest(byte[] header) {
    return new CommitCheckpoint(this, header);
  }

  public static CommitCheckpoint tracker(String saveDir, List<String> expected, Map<String, String> sideFiles,
      int iteration) {
    byte[] content = Integer.toString(iteration).getBytes(StandardCharsets.US_ASCII);
    return new CommitCheckpoint(saveDir, expected, sideFiles, Map.of(), "latest_checkpointed_iteration.txt",
        written -> content.clone());
  }

  @Override
  public PCollection<List<WrittenFile>> expand(PCollection<WrittenFile> written) {
    return written
        .apply("OneKey", WithKeys.of(0))
        .apply("AllWritten", GroupByKey.create())
        .apply(Values.create())
        .apply("WriteMarker", ParDo.of(new CommitFn(this)));
  }

  static final class CommitFn extends DoFn<Iterable<WrittenFile>, List<WrittenFile>> {
    private final CommitCheckpoint spec;

    CommitFn(CommitCheckpoint spec) {
      this.spec = spec;
    }

    @ProcessElement
    public void process(@Element Iterable<WrittenFile> files, OutputReceiver<List<WrittenFile>> out)
        throws IOException {
      List<WrittenFile> list = new ArrayList<>();
      TreeSet<String> missing = new TreeSet<>(spec.expected);
      for (WrittenFile f : files) {
        list.add(f);
        missing.remove(f.relativePath);
      }
      if (!missing.isEmpty()) {
        throw new IOException("conversion incomplete: " + missing.size() + " file(s) were not written, e.g. "
            + missing.first() + "; no completion marker written");
      }
      for (Map.Entry<String, String> side : spec.sideFiles.entrySet()) {
        CheckpointFiles.copySmallFile(side.getKey(), CheckpointFiles.resolve(spec.saveDir, side.getValue()),
            64L << 20);
      }
      for (Map.Entry<String, byte[]> g : spec.generated.entrySet()) {
        CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(spec.saveDir, g.getKey()), g.getValue());
      }
      list.sort(null);
      if (spec.manifestHeader != null) {
        com.fasterxml.jackson.databind.ObjectMapper json = new com.fasterxml.jackson.databind.ObjectMapper();
        com.fasterxml.jackson.databind.node.ObjectNode manifest =
            (com.fasterxml.jackson.databind.node.ObjectNode) json.readTree(spec.manifestHeader);
        com.fasterxml.jackson.databind.node.ArrayNode entries = manifest.putArray("files");
        for (WrittenFile f : list) {
          entries.add(ProgressRecord.toJson(f));
        }
        CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(spec.saveDir, MANIFEST),
            ckptbeam.io.PythonJson.write(manifest, 1));
      }
      CheckpointFiles.writeSmallFile(CheckpointFiles.resolve(spec.saveDir, spec.markerName), spec.marker.content(list));
      List<String> records = new ArrayList<>();
      for (WrittenFile f : list) {
        records.add(ProgressRecord.path(spec.saveDir, f.relativePath));
      }
      CheckpointFiles.deleteIfExists(records); // the manifest now holds what they held
      String progress = CheckpointFiles.resolve(spec.saveDir, ProgressRecord.DIR);
      if (CheckpointFiles.isLocal(progress)) {
        try {
          java.nio.file.Files.deleteIfExists(java.nio.file.Paths.get(progress));
        } catch (java.nio.file.DirectoryNotEmptyException e) {
          // records of another run's targets: leave them
        }
      }
      out.output(list);
    }
  }
}
