package ckptbeam.io.storage;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.CheckpointFormatException;
import com.google.api.client.http.HttpHeaders;
import com.google.api.client.http.HttpResponseException;
import com.google.cloud.storage.StorageException;
import java.io.EOFException;
import java.io.FileNotFoundException;
import java.io.IOException;
import java.net.SocketException;
import java.net.SocketTimeoutException;
import java.nio.file.AccessDeniedException;
import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;

/** What is retried, how often, and what a call that keeps failing says. */
class StoreRetryTest {
  private String before;

  @BeforeEach
  void fewAttempts() {
    before = System.getProperty("ckptbeam.storeAttempts");
    System.setProperty("ckptbeam.storeAttempts", "3");
  }

  @AfterEach
  void restore() {
    if (before == null) {
      System.clearProperty("ckptbeam.storeAttempts");
    } else {
      System.setProperty("ckptbeam.storeAttempts", before);
    }
  }

  private static IOException http(int status) {
    return new IOException("wrapped", new HttpResponseException.Builder(status, "status " + status, new HttpHeaders())
        .build());
  }

  @Test
  void transientFailuresAreThoseThatMayGoAway() {
    assertTrue(StoreRetry.isTransient(new SocketException("Connection reset")));
    assertTrue(StoreRetry.isTransient(new IOException("Connection closed prematurely: bytesRead = 1")));
    assertTrue(StoreRetry.isTransient(new EOFException("the store ended the read early")));
    assertTrue(StoreRetry.isTransient(new SocketTimeoutException("read timed out")));
    assertTrue(StoreRetry.isTransient(http(503)));
    assertTrue(StoreRetry.isTransient(http(500)));
    assertTrue(StoreRetry.isTransient(http(429)));
    assertTrue(StoreRetry.isTransient(http(408)));
    assertTrue(StoreRetry.isTransient(new StorageException(503, "backend error")));
    assertTrue(StoreRetry.isTransient(new RuntimeException(new StorageException(502, "bad gateway"))));
  }

  @Test
  void definiteFailuresAreNotRetried() {
    assertFalse(StoreRetry.isTransient(new FileNotFoundException("gone")));
    assertFalse(StoreRetry.isTransient(new AccessDeniedException("/x")));
    assertFalse(StoreRetry.isTransient(new CheckpointFormatException("f", "Rule", "bad bytes")));
    assertFalse(StoreRetry.isTransient(http(404)));
    assertFalse(StoreRetry.isTransient(http(403)));
    assertFalse(StoreRetry.isTransient(http(412)));
    assertFalse(StoreRetry.isTransient(new StorageException(400, "bad request")));
    assertFalse(StoreRetry.isTransient(new IllegalStateException("a bug, not the store")));
  }

  @Test
  void onlyADefiniteNotFoundMeansMissing() {
    assertTrue(StoreRetry.isNotFound(new FileNotFoundException("gone")));
    assertTrue(StoreRetry.isNotFound(http(404)));
    assertFalse(StoreRetry.isNotFound(http(503)));
    assertFalse(StoreRetry.isNotFound(new IOException("Connection closed prematurely")));
  }

  @Test
  void aTransientFailureIsRetriedUntilTheCallSucceeds() throws IOException {
    AtomicInteger calls = new AtomicInteger();
    String got = StoreRetry.call("gs://b/o: reading", () -> {
      if (calls.incrementAndGet() < 3) {
        throw http(503);
      }
      return "bytes";
    });
    assertEquals("bytes", got);
    assertEquals(3, calls.get());
  }

  @Test
  void aFailureThatOutlastsTheRetriesNamesTheCallAndTheStoresAnswer() {
    AtomicInteger calls = new AtomicInteger();
    IOException e = assertThrows(IOException.class, () -> StoreRetry.run("gs://b/o: uploading", () -> {
      calls.incrementAndGet();
      throw new SocketException("Connection reset");
    }));
    assertEquals(3, calls.get());
    assertEquals("gs://b/o: uploading: failed 3 times with a transient error, last: SocketException: Connection reset",
        e.getMessage());
    assertEquals(null, e.getCause(), "the message is complete: commands report the deepest cause's message");
    assertEquals(1, e.getSuppressed().length);
  }

  @Test
  void aDefiniteFailureIsThrownAtOnce() {
    AtomicInteger calls = new AtomicInteger();
    FileNotFoundException missing = new FileNotFoundException("gs://b/o: no such object");
    IOException e = assertThrows(IOException.class, () -> StoreRetry.call("gs://b/o: opening", () -> {
      calls.incrementAndGet();
      throw missing;
    }));
    assertSame(missing, e);
    assertEquals(1, calls.get());
  }
}
