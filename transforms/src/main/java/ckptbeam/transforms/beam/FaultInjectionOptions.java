package ckptbeam.transforms.beam;

import java.io.IOException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.Files;
import java.nio.file.Paths;
import org.apache.beam.sdk.options.Description;
import org.apache.beam.sdk.options.Hidden;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * Test hooks for retries: the writer of one target file fails once, after it has written and published the file,
 * so that the runner's retry writes the same file a second time; and a pause after every file, which leaves a test
 * the time to kill a worker while a conversion runs. "Once" is decided by creating a marker file, which
 * every worker on the machine sees, so it holds across the processes of a local cluster.
 */
@Hidden
public interface FaultInjectionOptions extends PipelineOptions {
  @Description("Test hook: the writer of this target file (relative name) fails once after writing it")
  String getFailOnceAfterWriting();

  void setFailOnceAfterWriting(String target);

  @Description("Test hook: the local marker file that records that the injected failure happened")
  String getFailOnceMarker();

  void setFailOnceMarker(String path);

  @Description("Test hook: every writer waits this long after writing its file (room to kill a worker mid-run)")
  Long getPauseAfterWritingMillis();

  void setPauseAfterWritingMillis(Long millis);

  /** Waits as long as {@link #getPauseAfterWritingMillis} says (nothing when unset). */
  static void pauseAfterWriting(PipelineOptions options) throws InterruptedException {
    Long pause = options.as(FaultInjectionOptions.class).getPauseAfterWritingMillis();
    if (pause != null && pause > 0) {
      Thread.sleep(pause);
    }
  }

  /** Throws the injected failure if {@code target} is the chosen file and the failure has not happened yet. */
  static void afterWriting(PipelineOptions options, String target) throws IOException {
    FaultInjectionOptions o = options.as(FaultInjectionOptions.class);
    if (o.getFailOnceAfterWriting() == null || !o.getFailOnceAfterWriting().equals(target)) {
      return;
    }
    if (o.getFailOnceMarker() == null) {
      throw new IllegalArgumentException("--failOnceAfterWriting needs --failOnceMarker");
    }
    try {
      Files.createFile(Paths.get(o.getFailOnceMarker()));
    } catch (FileAlreadyExistsException e) {
      return; // failed before: this is the retry
    }
    throw new InjectedFailure("injected failure after writing " + target + " (test hook --failOnceAfterWriting)");
  }

  /** The injected failure: it stands for a crashed worker, so writers let it through to the runner. */
  final class InjectedFailure extends RuntimeException {
    private static final long serialVersionUID = 1L;

    InjectedFailure(String message) {
      super(message);
    }
  }
}
