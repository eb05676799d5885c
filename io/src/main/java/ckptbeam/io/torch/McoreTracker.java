package ckptbeam.io.torch;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.storage.CheckpointFiles;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.nio.charset.StandardCharsets;

/** {@code latest_checkpointed_iteration.txt}: which iteration folder of an mcore checkpoint to read. */
public final class McoreTracker {
  public static final String FILE_NAME = "latest_checkpointed_iteration.txt";

  private McoreTracker() {}

  /** The folder of iteration {@code n}: {@code iter_0000001}. */
  public static String iterationDir(long n) {
    return String.format("iter_%07d", n);
  }

  /** The iteration folder named by the tracker of {@code dir}: {@code iter_0000001}, or {@code release}. */
  public static String iterationDir(String dir) throws IOException {
    String path = CheckpointFiles.resolve(dir, FILE_NAME);
    if (!CheckpointFiles.exists(path)) {
      throw new FileNotFoundException(path + ": no such file (is " + dir + " an mcore checkpoint?)");
    }
    String text = new String(CheckpointFiles.readSmallFile(path, 1024), StandardCharsets.UTF_8).strip();
    if (text.equals("release")) {
      return "release";
    }
    try {
      long it = Long.parseLong(text);
      if (it < 0) {
        throw new NumberFormatException();
      }
      return iterationDir(it);
    } catch (NumberFormatException e) {
      throw new CheckpointFormatException(path, "InvalidTracker", "holds \"" + text
          + "\", neither an iteration number nor \"release\"");
    }
  }
}
