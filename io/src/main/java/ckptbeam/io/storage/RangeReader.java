package ckptbeam.io.storage;

import java.io.Closeable;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.channels.FileChannel;

/** Random-access reads of byte ranges of one file, local or remote. */
public interface RangeReader extends Closeable {
  /** Size of the file in bytes. */
  long size() throws IOException;

  /**
   * Fills {@code dst} from its position to its limit with the file's bytes starting at {@code offset}. Reading
   * past the end of the file is an error naming the file.
   */
  void readFully(long offset, ByteBuffer dst) throws IOException;

  /** The open local file these bytes are read from, for copies the kernel can make; null when there is none. */
  default FileChannel localFile() {
    return null;
  }
}
