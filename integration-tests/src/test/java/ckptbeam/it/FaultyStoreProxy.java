package ckptbeam.it;

import com.sun.net.httpserver.HttpExchange;
import com.sun.net.httpserver.HttpServer;
import java.io.IOException;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.time.Duration;
import java.util.EnumMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * An HTTP proxy in front of the Cloud Storage emulator that fails some requests the way a store and a network do at
 * scale: a 503 answer, a connection closed before any answer (a reset), and a response body cut in the middle. Which
 * requests fail is decided from a seed and the request itself (method, URL, range headers, body), not from the order
 * in which requests arrive, so a run injects the same faults whatever its threads do; each distinct request fails at
 * most {@code maxFaultsPerRequest} times, so that retries get through. An outage (every request whose URL or body
 * names a given text fails) stands for a fault that outlasts the retries.
 */
final class FaultyStoreProxy implements AutoCloseable {
  enum Fault { UNAVAILABLE, RESET, CUT_BODY }

  /** Headers that Java's HTTP client sets itself. */
  private static final Set<String> NOT_FORWARDED = Set.of("host", "connection", "content-length", "expect", "upgrade",
      "keep-alive", "transfer-encoding", "te", "trailer", "proxy-connection", "http2-settings");

  final int port;
  private final int targetPort;
  private final long seed;
  private final double rate;
  private final int maxFaultsPerRequest;
  private final HttpServer server;
  private final ExecutorService threads = Executors.newCachedThreadPool(r -> {
    Thread t = new Thread(r, "faulty-store-proxy");
    t.setDaemon(true);
    return t;
  });
  private final HttpClient client = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
      .followRedirects(HttpClient.Redirect.NEVER).connectTimeout(Duration.ofSeconds(10)).build();
  private final Map<String, AtomicInteger> seen = new ConcurrentHashMap<>();
  private final Map<Fault, AtomicInteger> injected = new EnumMap<>(Fault.class);
  private final AtomicInteger requests = new AtomicInteger();
  private volatile String outage;

  FaultyStoreProxy(int targetPort, long seed, double rate, int maxFaultsPerRequest) throws IOException {
    this.targetPort = targetPort;
    this.seed = seed;
    this.rate = rate;
    this.maxFaultsPerRequest = maxFaultsPerRequest;
    for (Fault f : Fault.values()) {
      injected.put(f, new AtomicInteger());
    }
    server = HttpServer.create(new InetSocketAddress("127.0.0.1", 0), 64);
    server.createContext("/", this::handle);
    server.setExecutor(threads);
    server.start();
    port = server.getAddress().getPort();
  }

  /** The Beam flags that point a conversion at the store through this proxy. */
  List<String> beamFlags() {
    return List.of("--gcsEndpoint=http://127.0.0.1:" + port + "/storage/v1/",
        "--credentialFactoryClass=org.apache.beam.sdk.extensions.gcp.auth.NoopCredentialFactory",
        "--gcsUploadBufferSizeBytes=262144");
  }

  /** From now on every request whose URL or body contains {@code text} is answered 503 (null: none). */
  void outage(String text) {
    outage = text;
  }

  int requests() {
    return requests.get();
  }

  int injected(Fault f) {
    return injected.get(f).get();
  }

  int injected() {
    return injected.values().stream().mapToInt(AtomicInteger::get).sum();
  }

  @Override
  public String toString() {
    return requests + " request(s), faults injected: " + injected;
  }

  private void handle(HttpExchange ex) throws IOException {
    try (ex) {
      requests.incrementAndGet();
      byte[] body = ex.getRequestBody().readAllBytes();
      String method = ex.getRequestMethod();
      String uri = ex.getRequestURI().toString();
      String text = uri + "\n" + new String(body, StandardCharsets.ISO_8859_1);
      String down = outage;
      if (down != null && text.contains(down)) {
        respond(ex, 503, "{\"error\":{\"code\":503,\"message\":\"outage (test)\"}}".getBytes(StandardCharsets.UTF_8));
        return;
      }
      // an upload session's id is random: the request is identified by what it asks, so a seed picks the same faults
      String identity = method + " " + uri.replaceAll("upload_id=[^&]*", "") + " "
          + ex.getRequestHeaders().getFirst("Range") + " "
          + ex.getRequestHeaders().getFirst("Content-Range") + " " + sha256(body);
      int occurrence = seen.computeIfAbsent(identity, k -> new AtomicInteger()).getAndIncrement();
      Fault fault = occurrence < maxFaultsPerRequest ? decide(identity, occurrence, method) : null;
      if (fault == Fault.UNAVAILABLE) {
        injected.get(fault).incrementAndGet();
        respond(ex, 503, "{\"error\":{\"code\":503,\"message\":\"injected\"}}".getBytes(StandardCharsets.UTF_8));
        return;
      }
      if (fault == Fault.RESET) {
        injected.get(fault).incrementAndGet();
        return; // closed without an answer: the request never reached the store
      }
      String contentRange = ex.getRequestHeaders().getFirst("Content-Range");
      String uploadId = uploadId(uri);
      if (method.equals("PUT") && uploadId != null && body.length == 0 && contentRange != null
          && contentRange.startsWith("bytes */")) {
        answerStatusQuery(ex, uploadId);
        return;
      }
      HttpResponse<byte[]> r = forward(ex, method, uri, body);
      if (uploadId != null && method.equals("PUT")) {
        recordUploadProgress(uploadId, contentRange, r);
      }
      byte[] answer = rewrite(r.body(), r.headers().firstValue("Content-Type").orElse(""));
      r.headers().map().forEach((name, values) -> {
        String n = name.toLowerCase(Locale.ROOT);
        if (!NOT_FORWARDED.contains(n) && !n.equals(":status") && !n.equals("date")) {
          values.forEach(v -> ex.getResponseHeaders().add(name, n.equals("location") ? rewrite(v) : v));
        }
      });
      if (fault == Fault.CUT_BODY && answer.length > 1) {
        injected.get(fault).incrementAndGet();
        ex.sendResponseHeaders(r.statusCode(), answer.length);
        OutputStream out = ex.getResponseBody();
        out.write(answer, 0, answer.length / 2);
        out.flush();
        return; // the exchange closes short of its length: the client sees the body end early

      }
      respond(ex, r.statusCode(), method.equals("HEAD") ? null : answer);
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
    } catch (IOException | RuntimeException e) {
      // the client went away, or a cut body: nothing more to send
    }
  }

  /** What the store holds of one resumable upload: bytes persisted, and the answer that finalised it. */
  private static final class Upload {
    long persisted;
    HttpResponse<byte[]> finished;
  }

  private final Map<String, Upload> uploads = new ConcurrentHashMap<>();

  private static String uploadId(String uri) {
    int i = uri.indexOf("upload_id=");
    if (i < 0) {
      return null;
    }
    int end = uri.indexOf('&', i);
    return uri.substring(i + "upload_id=".length(), end < 0 ? uri.length() : end);
  }

  private void recordUploadProgress(String uploadId, String contentRange, HttpResponse<byte[]> r) {
    Upload u = uploads.computeIfAbsent(uploadId, k -> new Upload());
    synchronized (u) {
      if (r.statusCode() == 200 || r.statusCode() == 201) {
        u.finished = r;
      } else if (r.statusCode() == 308 && contentRange != null && contentRange.matches("bytes \\d+-\\d+/.*")) {
        long end = Long.parseLong(contentRange.substring(6, contentRange.indexOf('/')).split("-")[1]);
        u.persisted = Math.max(u.persisted, end + 1);
      }
    }
  }

  /**
   * The answer Cloud Storage gives to a resumable upload's status check ({@code PUT} with {@code Content-Range:
   * bytes *}{@code /N} and no body, what a client sends after a failed chunk): 308 with the range it holds, or the
   * finished object. Answered here because the emulator gets it wrong: it finalises the object with the bytes it has
   * (seen: a 0-byte config.json after one 503), which Cloud Storage never does.
   */
  private void answerStatusQuery(HttpExchange ex, String uploadId) throws IOException {
    Upload u = uploads.computeIfAbsent(uploadId, k -> new Upload());
    HttpResponse<byte[]> finished;
    long persisted;
    synchronized (u) {
      finished = u.finished;
      persisted = u.persisted;
    }
    if (finished != null) {
      finished.headers().map().forEach((name, values) -> {
        String n = name.toLowerCase(Locale.ROOT);
        if (!NOT_FORWARDED.contains(n) && !n.equals(":status") && !n.equals("date")) {
          values.forEach(v -> ex.getResponseHeaders().add(name, v));
        }
      });
      respond(ex, finished.statusCode(), rewrite(finished.body(),
          finished.headers().firstValue("Content-Type").orElse("")));
      return;
    }
    if (persisted > 0) {
      ex.getResponseHeaders().add("Range", "bytes=0-" + (persisted - 1));
    }
    ex.sendResponseHeaders(308, -1);
  }

  /** A fault for this request's {@code occurrence}-th arrival, or null; cut bodies only for reads. */
  private Fault decide(String identity, int occurrence, String method) {
    byte[] h = digest((seed + "\n" + occurrence + "\n" + identity).getBytes(StandardCharsets.UTF_8));
    double u = (ByteBuffer.wrap(h).getLong() >>> 11) / (double) (1L << 53);
    if (u >= rate) {
      return null;
    }
    Fault f = Fault.values()[(h[8] & 0xff) % 3];
    return f == Fault.CUT_BODY && !method.equals("GET") ? Fault.UNAVAILABLE : f;
  }

  private HttpResponse<byte[]> forward(HttpExchange ex, String method, String uri, byte[] body)
      throws IOException, InterruptedException {
    HttpRequest.Builder b = HttpRequest.newBuilder(URI.create("http://127.0.0.1:" + targetPort + uri))
        .timeout(Duration.ofSeconds(60))
        .method(method, body.length == 0 ? HttpRequest.BodyPublishers.noBody()
            : HttpRequest.BodyPublishers.ofByteArray(body));
    ex.getRequestHeaders().forEach((name, values) -> {
      if (!NOT_FORWARDED.contains(name.toLowerCase(Locale.ROOT))) {
        values.forEach(v -> b.header(name, v));
      }
    });
    return client.send(b.build(), HttpResponse.BodyHandlers.ofByteArray());
  }

  /** The emulator names itself in upload session URLs and object links: clients must come back through the proxy. */
  private String rewrite(String s) {
    return s.replace("127.0.0.1:" + targetPort, "127.0.0.1:" + port).replace("localhost:" + targetPort,
        "127.0.0.1:" + port);
  }

  private byte[] rewrite(byte[] body, String contentType) {
    if (!contentType.contains("json") && !contentType.startsWith("text/") && !contentType.startsWith("multipart/")) {
      return body;
    }
    String s = new String(body, StandardCharsets.ISO_8859_1);
    String r = rewrite(s);
    return r.equals(s) ? body : r.getBytes(StandardCharsets.ISO_8859_1);
  }

  private static void respond(HttpExchange ex, int status, byte[] body) throws IOException {
    boolean none = body == null || body.length == 0 || status == 204 || status == 304;
    ex.sendResponseHeaders(status, none ? -1 : body.length);
    if (!none) {
      try (OutputStream out = ex.getResponseBody()) {
        out.write(body);
      }
    }
  }

  private static String sha256(byte[] b) {
    return java.util.HexFormat.of().formatHex(digest(b));
  }

  private static byte[] digest(byte[] b) {
    try {
      return MessageDigest.getInstance("SHA-256").digest(b);
    } catch (NoSuchAlgorithmException e) {
      throw new IllegalStateException(e);
    }
  }

  @Override
  public void close() {
    server.stop(0);
    threads.shutdownNow();
  }
}
