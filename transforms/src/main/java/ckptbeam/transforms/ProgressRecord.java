package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.Sha256;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.core.JsonProcessingException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/**
 * What a writer leaves next to the output once a target file is complete ({@code .ckptbeam-progress/…json}): the
 * file's size, SHA-256 and tensors, and the fingerprint of the conversion that wrote it. A {@code --resume} run keeps
 * a file only if its record carries the same fingerprint and the file on disk still has that size and hash.
 */
public final class ProgressRecord {
  public static final String DIR = ".ckptbeam-progress";

  private ProgressRecord() {}

  public static String path(String saveDir, String target) {
    return CheckpointFiles.resolve(saveDir, DIR + "/" + Sha256.of(target.getBytes(StandardCharsets.UTF_8)) + ".json");
  }

  public static void write(String saveDir, String fingerprint, WrittenFile f) throws IOException {
    CheckpointFiles.writeSmallFile(path(saveDir, f.relativePath), OutputRecords.write(new OutputRecords.Progress(
        fingerprint, OutputRecords.FileEntry.of(f))));
  }

  /** The file as recorded, if the record exists, matches the fingerprint and the file is intact; else null. */
  public static WrittenFile reusable(String saveDir, String fingerprint, String target) throws IOException {
    String record = path(saveDir, target);
    if (!CheckpointFiles.exists(record)) {
      return null;
    }
    OutputRecords.Progress progress;
    try {
      progress = OutputRecords.read(CheckpointFiles.readSmallFile(record, 256L << 20), OutputRecords.Progress.class);
    } catch (JsonProcessingException e) {
      return null; // a torn record: rewrite the file
    }
    if (!fingerprint.equals(progress.fingerprint()) || progress.file() == null) {
      return null;
    }
    WrittenFile f = progress.file().toWrittenFile();
    String path = CheckpointFiles.resolve(saveDir, target);
    if (!target.equals(f.relativePath) || CheckpointFiles.sizeOrMissing(path) != f.bytes
        || !Sha256.ofFile(path).equals(f.sha256)) {
      return null;
    }
    return f.reused();
  }
}
