package org.apache.beam.sdk.io.gcp.pubsub;

import com.google.api.client.util.Clock;

/**
 * Reaches the package-private {@code PubsubIO.Read.withClock}: Beam's in-memory Pub/Sub client serves a pull only
 * when the reader's request time equals the time its messages were queued for, so tests freeze the reader's clock.
 */
public final class PubsubReads {
  private PubsubReads() {}

  public static <T> PubsubIO.Read<T> withClock(PubsubIO.Read<T> read, Clock clock) {
    return read.withClock(clock);
  }
}
