package ckptbeam.io.storage;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.channels.WritableByteChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.nio.file.StandardOpenOption;
import java.security.MessageDigest;
import java.util.HexFormat;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * Writes one output file under a staging name and moves it into place only when complete, so a crash never leaves a
 * file that looks finished; the bytes are hashed as they are written. On {@code gs://} the upload itself is the
 * staging: the object appears only when the upload is finalised ({@link GcsObjects}).
 */
public final class StagedOutput {
  public static final String STAGING_SUFFIX = ".ckptbeam-partial";

  private StagedOutput() {}

  /** Produces the file's bytes, in order. */
  @FunctionalInterface
  public interface Body {
    void write(WritableByteChannel out) throws IOException;
  }

  /** The size and SHA-256 of a published file. */
  public static final class Result {
    public final long bytes;
    public final String sha256;

    Result(long bytes, String sha256) {
      this.bytes = bytes;
      this.sha256 = sha256;
    }
  }

  /**
   * Writes {@code destination}; {@code storage} is the pipeline's options, for remote file systems (the gs://
   * endpoint, credentials and upload chunk size; null: the client library's defaults).
   */
  public static Result write(String destination, PipelineOptions storage, Body body) throws IOException {
    if (destination.startsWith("gs://")) {
      // An object is published when its upload is finalised. The client retries each chunk; an upload that fails
      // anyway is started again from the first byte (the body is a description of the bytes: it writes them again).
      return StoreRetry.call(destination + ": uploading", () -> GcsObjects.write(destination, body, storage));
    }
    Path staged = stagingPath(destination);
    String sha256;
    try (FileChannel out = FileChannel.open(staged, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
        StandardOpenOption.TRUNCATE_EXISTING); FileChannel direct = BackgroundWriteChannel.openDirect(staged)) {
      // writing and hashing run on threads of their own while the body reads and assembles the next bytes
      MessageDigest digest = Sha256.digest();
      BackgroundWriteChannel background = new BackgroundWriteChannel(out, direct, digest, destination);
      try {
        body.write(background);
        background.finish();
      } catch (IOException | RuntimeException | Error e) {
        background.abandon();
        throw e;
      }
      sha256 = HexFormat.of().formatHex(digest.digest());
    } catch (IOException | RuntimeException e) {
      Files.deleteIfExists(staged);
      throw e;
    }
    long bytes = Files.size(staged);
    CheckpointFiles.publish(staged, destination);
    return new Result(bytes, sha256);
  }

  /** Next to a local destination (so the final move is an atomic rename), else in the temp folder. */
  static Path stagingPath(String destination) throws IOException {
    if (CheckpointFiles.isLocal(destination)) {
      Path dest = Paths.get(destination);
      Files.createDirectories(dest.getParent());
      return dest.resolveSibling(dest.getFileName() + STAGING_SUFFIX);
    }
    return Files.createTempFile("ckptbeam-", STAGING_SUFFIX);
  }
}
