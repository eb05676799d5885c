package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.google.cloud.NoCredentials;
import com.google.cloud.storage.Blob;
import com.google.cloud.storage.BlobId;
import com.google.cloud.storage.BlobInfo;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.StorageOptions;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.net.ServerSocket;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

/**
 * A real Cloud Storage emulator process (firebase-tools' StorageEmulator run by {@code gcs-emulator.js}; {@code .ci/run}
 * installs it with {@code npm ci}) and a client for the test's own uploads and downloads.
 */
final class GcsEmulator implements AutoCloseable {
  final int port;
  final Storage storage;
  private final Process process;

  private GcsEmulator(int port, Process process) {
    this.port = port;
    this.process = process;
    this.storage = StorageOptions.newBuilder().setHost("http://127.0.0.1:" + port).setProjectId("ckptbeam-test")
        .setCredentials(NoCredentials.getInstance()).build().getService();
  }

  /** Starts the emulator with its blobs under {@code dir}; fails (never skips) when it is not installed. */
  static GcsEmulator start(Path dir) throws Exception {
    Path home = Torch.repo().resolve("integration-tests/gcs-emulator");
    if (!Files.isDirectory(home.resolve("node_modules/firebase-tools"))) {
      fail("the GCS emulator is not installed: run `npm ci` in " + home + " (.ci/run does)");
    }
    int port;
    try (ServerSocket s = new ServerSocket(0)) {
      port = s.getLocalPort();
    }
    Files.createDirectories(dir);
    ProcessBuilder pb = new ProcessBuilder("node", home.resolve("gcs-emulator.js").toString()).redirectErrorStream(true);
    pb.environment().put("TMPDIR", dir.toString());
    pb.environment().put("GCS_EMULATOR_PORT", String.valueOf(port));
    Process p = pb.start();
    BufferedReader out = new BufferedReader(new InputStreamReader(p.getInputStream(), StandardCharsets.UTF_8));
    CompletableFuture<String> ready = CompletableFuture.supplyAsync(() -> {
      StringBuilder seen = new StringBuilder();
      try {
        for (String line; (line = out.readLine()) != null; ) {
          seen.append(line).append('\n');
          if (line.startsWith("gcs-emulator ready")) {
            return line;
          }
        }
      } catch (IOException e) {
        seen.append(e);
      }
      return "exited: " + seen;
    });
    String line = ready.get(60, TimeUnit.SECONDS);
    if (!line.startsWith("gcs-emulator ready")) {
      p.destroyForcibly();
      fail("the GCS emulator did not start: " + line);
    }
    // keep draining its output so that it never blocks on a full pipe
    CompletableFuture.runAsync(() -> {
      try {
        while (out.readLine() != null) {
          // discard
        }
      } catch (IOException e) {
        // the process ended
      }
    });
    return new GcsEmulator(port, p);
  }

  /** The Beam flags that point a conversion at this emulator (chunked uploads of 256 KiB to exercise resumption). */
  List<String> beamFlags() {
    return List.of("--gcsEndpoint=http://127.0.0.1:" + port + "/storage/v1/",
        "--credentialFactoryClass=org.apache.beam.sdk.extensions.gcp.auth.NoopCredentialFactory",
        "--gcsUploadBufferSizeBytes=262144");
  }

  /** Uploads every file under {@code dir} to gs://bucket/prefix/…; returns the gs:// folder. */
  String upload(Path dir, String bucket, String prefix) throws IOException {
    try (Stream<Path> s = Files.walk(dir)) {
      for (Path f : s.filter(Files::isRegularFile).toList()) {
        String name = prefix + "/" + dir.relativize(f).toString().replace('\\', '/');
        storage.create(BlobInfo.newBuilder(BlobId.of(bucket, name)).build(), Files.readAllBytes(f));
      }
    }
    return "gs://" + bucket + "/" + prefix;
  }

  /** Downloads every object under gs://bucket/prefix/ into {@code dir}; returns the object names (relative). */
  List<String> download(String bucket, String prefix, Path dir) throws IOException {
    List<String> names = new ArrayList<>();
    for (Blob b : storage.list(bucket, Storage.BlobListOption.prefix(prefix + "/")).iterateAll()) {
      String rel = b.getName().substring(prefix.length() + 1);
      Path out = dir.resolve(rel);
      Files.createDirectories(out.getParent());
      Files.write(out, b.getContent());
      names.add(rel);
    }
    assertTrue(!names.isEmpty(), "objects under gs://" + bucket + "/" + prefix);
    return names;
  }

  @Override
  public void close() throws Exception {
    process.destroy();
    if (!process.waitFor(10, TimeUnit.SECONDS)) {
      process.destroyForcibly();
    }
  }
}
