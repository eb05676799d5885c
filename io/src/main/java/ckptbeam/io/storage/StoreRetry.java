package ckptbeam.io.storage;

import ckptbeam.io.CheckpointFormatException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.io.InterruptedIOException;
import java.io.UncheckedIOException;
import java.lang.reflect.Method;
import java.nio.file.AccessDeniedException;
import java.nio.file.NoSuchFileException;
import java.util.concurrent.ThreadLocalRandom;

/**
 * Bounded, jittered retries of calls to a remote store. Object stores answer a few requests in a million with 503 or
 * 429, reset connections and cut response bodies; at a thousand files and millions of ranged reads per conversion
 * that is every run. A call is retried when its failure is transient (an HTTP status of 408, 429 or 5xx, or an I/O
 * error without a status: a reset, a timeout, a body that ended early) and fails at once when it is definite: not
 * found (404, {@link FileNotFoundException}), refused (another 4xx), or a format error of the bytes themselves.
 *
 * <p>Delays grow from {@link #BASE_DELAY_MILLIS} by doubling to {@link #MAX_DELAY_MILLIS}, each drawn uniformly between
 * half its bound and its bound (jitter, so that workers that failed together do not retry together), over at most
 * {@link #attempts()} attempts: 6 to 11 s of waiting before a call gives up, long enough for a store's brief
 * unavailability and short enough that an outage fails the run in seconds, not hours.
 * The system property {@code ckptbeam.storeAttempts} changes the count (tests of an outage use 2).
 */
public final class StoreRetry {
  static final long BASE_DELAY_MILLIS = 200;
  static final long MAX_DELAY_MILLIS = 5_000;
  private static final int DEFAULT_ATTEMPTS = 7;

  private StoreRetry() {}

  /** A call to the store. */
  @FunctionalInterface
  public interface Call<T> {
    T call() throws IOException;
  }

  /** A call to the store without a result. */
  @FunctionalInterface
  public interface Action {
    void run() throws IOException;
  }

  /** How many attempts a call gets. */
  public static int attempts() {
    Integer n = Integer.getInteger("ckptbeam.storeAttempts");
    return n == null || n < 1 ? DEFAULT_ATTEMPTS : n;
  }

  /**
   * Runs {@code call}, retrying transient failures; the last failure is thrown with {@code what} (the object and the
   * operation) and the number of attempts added, so that an outage names what it stopped.
   */
  public static <T> T call(String what, Call<T> call) throws IOException {
    int attempts = attempts();
    for (int attempt = 1; ; attempt++) {
      try {
        return call.call();
      } catch (IOException | RuntimeException e) {
        if (!isTransient(e)) {
          throw e;
        }
        if (attempt >= attempts) {
          // The message says everything (the object, the operation, the store's answer): the last error rides along
          // as suppressed, not as the cause, since a command reports the deepest cause's message.
          IOException failed = new IOException(what + ": failed " + attempts + " times with a transient error, "
              + "last: " + describe(e));
          failed.addSuppressed(e);
          throw failed;
        }
        sleep(attempt);
      }
    }
  }

  /** {@link #call} for an action without a result. */
  public static void run(String what, Action action) throws IOException {
    call(what, () -> {
      action.run();
      return null;
    });
  }

  /**
   * Whether a failure may go away by itself: a status of 408, 429 or 5xx anywhere in its causes, or an I/O error
   * that carries no status and is not one of the definite kinds.
   */
  public static boolean isTransient(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (definite(t)) {
        return false;
      }
      int status = httpStatus(t);
      if (status > 0) {
        return status == 408 || status == 429 || status >= 500;
      }
    }
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof IOException || t instanceof UncheckedIOException) {
        return !(t instanceof InterruptedIOException) || t instanceof java.net.SocketTimeoutException;
      }
    }
    return false;
  }

  /** Whether a failure says for certain that the object does not exist. */
  public static boolean isNotFound(Throwable e) {
    for (Throwable t = e; t != null; t = t.getCause() == t ? null : t.getCause()) {
      if (t instanceof FileNotFoundException || t instanceof NoSuchFileException || httpStatus(t) == 404) {
        return true;
      }
    }
    return false;
  }

  private static boolean definite(Throwable t) {
    return t instanceof FileNotFoundException || t instanceof NoSuchFileException
        || t instanceof AccessDeniedException || t instanceof CheckpointFormatException;
  }

  /**
   * The HTTP status a client library's exception carries ({@code getStatusCode()} of google-http-client's
   * {@code HttpResponseException}, {@code getCode()} of google-cloud's {@code BaseServiceException}), or 0. Looked up
   * by name so that this class does not load the GCS client on a machine that only reads local files.
   */
  static int httpStatus(Throwable t) {
    String name = t.getClass().getName();
    if (!name.startsWith("com.google.")) {
      return 0;
    }
    for (String method : new String[] {"getStatusCode", "getCode"}) {
      try {
        Method m = t.getClass().getMethod(method);
        if (m.getReturnType() == int.class) {
          return (Integer) m.invoke(t);
        }
      } catch (ReflectiveOperationException | RuntimeException e) {
        // not this kind
      }
    }
    return 0;
  }

  private static String describe(Throwable e) {
    String m = e.getMessage();
    return e.getClass().getSimpleName() + (m == null ? "" : ": " + m.lines().findFirst().orElse(""));
  }

  private static void sleep(int attempt) throws InterruptedIOException {
    long bound = Math.min(MAX_DELAY_MILLIS, BASE_DELAY_MILLIS << Math.min(attempt - 1, 20));
    try {
      Thread.sleep(ThreadLocalRandom.current().nextLong(bound / 2, bound + 1));
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      throw new InterruptedIOException("interrupted while waiting to retry a call to the store");
    }
  }
}
