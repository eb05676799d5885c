package ckptbeam.transforms.beam;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.CheckpointCommit;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.OutputRecords;
import java.io.IOException;
import java.io.Serializable;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;

/**
 * What became of one {@link ConversionRequest}: converted, already converted (its output was complete for the same
 * conversion), or failed with a message; the data files written with their size and SHA-256; tensor and byte counts.
 */
public final class ConversionResult implements Serializable {
  private static final long serialVersionUID = 1L;

  public enum State {
    CONVERTED, ALREADY_CONVERTED, FAILED
  }

  /** One data file of the output. */
  public static final class File implements Serializable {
    private static final long serialVersionUID = 1L;
    public final String path;
    public final long size;
    public final String sha256;
    public final int tensors;

    public File(String path, long size, String sha256, int tensors) {
      this.path = path;
      this.size = size;
      this.sha256 = sha256;
      this.tensors = tensors;
    }

    @Override
    public boolean equals(Object o) {
      return o instanceof File && path.equals(((File) o).path) && size == ((File) o).size
          && sha256.equals(((File) o).sha256) && tensors == ((File) o).tensors;
    }

    @Override
    public int hashCode() {
      return Objects.hash(path, size, sha256);
    }
  }

  public final ConversionRequest request;
  public final State state;
  /** Why it failed (null unless {@link State#FAILED}). */
  public final String message;
  /** The data files, sorted by path (empty when failed). */
  public final List<File> files;
  /** Notes that are not errors: input tensors the layout leaves out. */
  public final List<String> notes;
  public final long startMillis;
  public final long endMillis;

  ConversionResult(ConversionRequest request, State state, String message, List<File> files, List<String> notes,
      long startMillis, long endMillis) {
    this.request = request;
    this.state = state;
    this.message = message;
    this.files = List.copyOf(files);
    this.notes = List.copyOf(notes);
    this.startMillis = startMillis;
    this.endMillis = endMillis;
  }

  /** A request that is refused before it reaches the conversion ({@code why}: one sentence naming the cause). */
  public static ConversionResult refused(ConversionRequest r, String why) {
    return failed(r, why, List.of(), System.currentTimeMillis());
  }

  /** The coder of results (for a pipeline that makes results of its own, such as {@link #refused}). */
  public static org.apache.beam.sdk.coders.Coder<ConversionResult> coder() {
    return ConversionCoders.ResultCoder.INSTANCE;
  }

  static ConversionResult failed(ConversionRequest r, String message, List<String> notes, long start) {
    return new ConversionResult(r, State.FAILED, message, List.of(), notes, start, System.currentTimeMillis());
  }

  static ConversionResult converted(ConversionRequest r, List<WrittenFile> written, List<String> notes, long start) {
    List<File> files = new ArrayList<>();
    for (WrittenFile f : written) {
      files.add(new File(f.relativePath, f.bytes, f.sha256, f.tensors()));
    }
    files.sort((a, b) -> a.path.compareTo(b.path));
    return new ConversionResult(r, State.CONVERTED, null, files, notes, start, System.currentTimeMillis());
  }

  /** An output found complete: its files as its manifest lists them. */
  static ConversionResult alreadyConverted(ConversionRequest r, long start) throws IOException {
    OutputRecords.Manifest manifest = OutputRecords.read(CheckpointFiles.readSmallFile(
        CheckpointFiles.resolve(r.saveDir(), CheckpointCommit.MANIFEST), 256L << 20), OutputRecords.Manifest.class);
    List<File> files = new ArrayList<>();
    for (OutputRecords.FileEntry f : manifest.files()) {
      files.add(new File(f.path(), f.size(), f.sha256(), f.tensors().size()));
    }
    return new ConversionResult(r, State.ALREADY_CONVERTED, null, files, manifest.notes(), start,
        System.currentTimeMillis());
  }

  /** Tensors in the data files. */
  public long tensors() {
    return files.stream().mapToLong(f -> f.tensors).sum();
  }

  /** Bytes of the data files. */
  public long bytes() {
    return files.stream().mapToLong(f -> f.size).sum();
  }

  @Override
  public boolean equals(Object o) {
    if (!(o instanceof ConversionResult)) {
      return false;
    }
    ConversionResult r = (ConversionResult) o;
    return request.equals(r.request) && state == r.state && Objects.equals(message, r.message)
        && files.equals(r.files) && notes.equals(r.notes) && startMillis == r.startMillis
        && endMillis == r.endMillis;
  }

  @Override
  public int hashCode() {
    return Objects.hash(request, state, message, files);
  }

  @Override
  public String toString() {
    return request + ": " + state + (message == null ? "" : " (" + message + ")") + ", " + files.size() + " file(s), "
        + bytes() + " bytes";
  }
}
