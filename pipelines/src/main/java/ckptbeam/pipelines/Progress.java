package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.transforms.ProgressRecord;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;

/**
 * Progress of a conversion on the command line, read from the save dir while the job runs (so it works with any
 * runner whose workers write to a shared file system): files finished (their progress records) and bytes written
 * (finished files plus those being written). On a terminal: one line, redrawn at most four times a second. Otherwise
 * (logs, CI): a plain line at every tenth of the way and at least every 30 seconds. Remote save dirs report through
 * the runner's metrics ({@code ckptbeam} namespace) instead.
 */
final class Progress implements AutoCloseable {
  /** What has been done so far. */
  static final class Snapshot {
    final int files;
    final long bytes;

    Snapshot(int files, long bytes) {
      this.files = files;
      this.bytes = bytes;
    }
  }

  /** Turns snapshots into lines; pure, so that tests can drive it with their own clock. */
  static final class Renderer {
    private final String label;
    private final int totalFiles;
    private final long totalBytes;
    private final boolean tty;
    private long lastPrint = Long.MIN_VALUE;
    private int lastTenth = -1;
    private int filesSeen;
    private long bytesSeen;

    /** @param totalBytes the expected bytes, or 0 when unknown (the fraction then counts files) */
    Renderer(String label, int totalFiles, long totalBytes, boolean tty) {
      this.label = label;
      this.totalFiles = totalFiles;
      this.totalBytes = totalBytes;
      this.tty = tty;
    }

    /** The fraction done, 0..1: bytes when their total is known, else files; 1 only once every file is done. */
    double fraction(Snapshot s) {
      if (s.files >= totalFiles) {
        return 1;
      }
      double f = totalBytes > 0 ? (double) s.bytes / totalBytes : (double) s.files / Math.max(1, totalFiles);
      return Math.min(f, 0.99);
    }

    String line(Snapshot s, long elapsedNanos) {
      double seconds = elapsedNanos / 1e9;
      double f = fraction(s);
      double rate = seconds > 0 ? s.bytes / seconds : 0;
      String eta = f >= 1 ? "done" : f > 0 ? "ETA " + clock((long) (seconds * (1 - f) / f)) : "ETA -";
      return String.format(Locale.ROOT, "%s: %d/%d files (%d%%), %s%s, %.0f MB/s, %s", label, Math.min(s.files,
          totalFiles), totalFiles, (int) Math.floor(f * 100), gb(s.bytes), totalBytes > 0 ? "/" + gb(totalBytes) : "",
          rate / 1e6, eta);
    }

    /** The text to print now for {@code s}, or null: on a terminal every call, otherwise per tenth or 30 s. */
    String render(Snapshot sample, long elapsedNanos) {
      // never backwards: the commit removes the progress records, a staging file is renamed between two looks
      filesSeen = Math.max(filesSeen, sample.files);
      bytesSeen = Math.max(bytesSeen, sample.bytes);
      Snapshot s = new Snapshot(filesSeen, bytesSeen);
      String line = line(s, elapsedNanos);
      if (tty) {
        return "\r" + line + "\u001b[K";
      }
      int tenth = (int) Math.floor(fraction(s) * 10);
      if (tenth > lastTenth || elapsedNanos - lastPrint >= 30_000_000_000L) {
        lastTenth = Math.max(tenth, lastTenth);
        lastPrint = elapsedNanos;
        return line + "\n";
      }
      return null;
    }

    private static String gb(long bytes) {
      return String.format(Locale.ROOT, "%.2f GB", bytes / 1e9);
    }

    private static String clock(long seconds) {
      return seconds >= 3600 ? String.format("%d:%02d:%02d", seconds / 3600, seconds / 60 % 60, seconds % 60)
          : String.format("%d:%02d", seconds / 60, seconds % 60);
    }
  }

  private final Renderer renderer;
  private final PrintStream out;
  private final String saveDir;
  private final List<String> targets;
  private final long start = System.nanoTime();
  private final Thread thread;
  private final boolean tty;
  private volatile boolean stopped;
  private volatile boolean done;

  private Progress(String label, String saveDir, List<String> targets, long totalBytes, PrintStream out,
      boolean tty) {
    this.renderer = new Renderer(label, targets.size(), totalBytes, tty);
    this.out = out;
    this.saveDir = saveDir;
    this.targets = List.copyOf(targets);
    this.tty = tty;
    this.thread = new Thread(this::loop, "ckptbeam-progress");
    thread.setDaemon(true);
  }

  /** Starts reporting, or returns null when progress is off ({@code --quiet}) or the save dir is not local. */
  static Progress start(String label, String saveDir, List<String> targets, long totalBytes, PrintStream out,
      boolean quiet) {
    if (quiet || !CheckpointFiles.isLocal(saveDir)) {
      return null;
    }
    boolean tty = out == System.out && System.console() != null;
    Progress p = new Progress(label, saveDir, targets, totalBytes, out, tty);
    p.thread.start();
    return p;
  }

  private void loop() {
    while (!stopped) {
      try {
        Thread.sleep(250);
        String text = renderer.render(snapshot(), System.nanoTime() - start);
        if (text != null && !stopped) {
          out.print(text);
          out.flush();
        }
      } catch (InterruptedException e) {
        return;
      } catch (IOException | RuntimeException e) {
        // a file vanished between listing and stat (a staging file renamed): the next sample counts it
      }
    }
  }

  /** Files finished and bytes written so far, from the save dir. */
  Snapshot snapshot() throws IOException {
    Path dir = Paths.get(saveDir);
    int done = 0;
    Path records = dir.resolve(ProgressRecord.DIR);
    if (Files.isDirectory(records)) {
      try (Stream<Path> s = Files.list(records)) {
        done = (int) s.filter(p -> p.toString().endsWith(".json")).count();
      }
    }
    long bytes = 0;
    for (String t : targets) {
      Path f = dir.resolve(t);
      Path staged = f.resolveSibling(f.getFileName() + StagedOutput.STAGING_SUFFIX);
      bytes += Files.exists(staged) ? Files.size(staged) : Files.exists(f) ? Files.size(f) : 0;
    }
    return new Snapshot(done, bytes);
  }

  /** Stops; on a terminal the line is ended, showing every file done when the conversion succeeded. */
  void finish(boolean succeeded) {
    if (succeeded) {
      done = true;
    }
    close();
  }

  @Override
  public void close() {
    if (stopped) {
      return;
    }
    stopped = true;
    thread.interrupt();
    try {
      thread.join(1000);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    }
    if (tty) {
      String last = done ? renderer.render(new Snapshot(targets.size(), bytesNow()), System.nanoTime() - start)
          : "";
      out.print(last + "\n");
      out.flush();
    }
  }

  private long bytesNow() {
    try {
      return snapshot().bytes;
    } catch (IOException e) {
      return 0;
    }
  }
}
