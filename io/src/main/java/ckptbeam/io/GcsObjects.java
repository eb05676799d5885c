package ckptbeam.io;

import com.google.auth.Credentials;
import com.google.cloud.NoCredentials;
import com.google.cloud.WriteChannel;
import com.google.cloud.storage.BlobInfo;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.StorageOptions;
import java.io.IOException;
import java.util.concurrent.atomic.AtomicReference;
import org.apache.beam.sdk.extensions.gcp.options.GcpOptions;
import org.apache.beam.sdk.extensions.gcp.options.GcsOptions;
import org.apache.beam.sdk.options.PipelineOptions;

/**
 * Writes {@code gs://} objects with the google-cloud-storage client: one resumable upload per file, streamed in
 * chunks (64 MiB unless {@code --gcsUploadBufferSizeBytes} says otherwise), so an output file never has to be staged
 * on the worker's disk. A GCS object becomes visible only when its upload is finalised, which gives the same
 * all-or-nothing publication as a local rename: a failed writer simply never finalises (the session expires).
 *
 * <p>The client follows the pipeline's options (endpoint, credentials) that the writers hand to
 * {@link StagedOutput#useOptions} (this class is loaded only when a gs:// file is written, so a job jar without the
 * GCS client still runs everything else).
 */
public final class GcsObjects {
  static final int DEFAULT_CHUNK = 64 << 20;
  /** Until a pipeline's options arrive: the client library's defaults (application default credentials). */
  private static final AtomicReference<Settings> SETTINGS = new AtomicReference<>(null);
  private static volatile Storage client;

  private GcsObjects() {}

  /** Takes the endpoint, credentials, project and upload chunk size from the pipeline's options. */
  static void configure(PipelineOptions options) {
    if (options == null) {
      return;
    }
    GcsOptions gcs = options.as(GcsOptions.class);
    String endpoint = gcs.getGcsEndpoint();
    Credentials credentials = null;
    try {
      credentials = gcs.as(GcpOptions.class).getGcpCredential();
    } catch (RuntimeException e) {
      // no default credentials on this machine: unauthenticated (an emulator), or the upload fails with GCS's message
    }
    Integer chunk = gcs.getGcsUploadBufferSizeBytes();
    String project = gcs.getProject() == null ? "" : gcs.getProject();
    Settings next = new Settings(endpoint, credentials, project, chunk == null ? DEFAULT_CHUNK : chunk);
    if (!next.equals(SETTINGS.getAndSet(next))) {
      client = null;
    }
  }

  /** Uploads the bytes {@code body} writes as object {@code gsPath}; returns the size and SHA-256. */
  static StagedOutput.Result write(String gsPath, StagedOutput.Body body, PipelineOptions options)
      throws IOException {
    configure(options);
    BlobInfo info = BlobInfo.newBuilder(bucket(gsPath), object(gsPath)).setContentType("application/octet-stream")
        .build();
    WriteChannel channel = storage().writer(info);
    Settings settings = SETTINGS.get();
    channel.setChunkSize(settings == null ? DEFAULT_CHUNK : settings.chunk);
    DigestingChannel digest = new DigestingChannel(channel);
    // Not closed on failure: closing finalises the upload and would publish a partial object.
    body.write(digest);
    channel.close();
    return new StagedOutput.Result(digest.count(), digest.sha256());
  }

  static String bucket(String gsPath) {
    String rest = gsPath.substring("gs://".length());
    int slash = rest.indexOf('/');
    if (slash <= 0 || slash == rest.length() - 1) {
      throw new IllegalArgumentException(gsPath + ": not a gs://BUCKET/OBJECT path");
    }
    return rest.substring(0, slash);
  }

  static String object(String gsPath) {
    String rest = gsPath.substring("gs://".length());
    return rest.substring(bucket(gsPath).length() + 1);
  }

  private static Storage storage() {
    Storage s = client;
    if (s == null) {
      synchronized (GcsObjects.class) {
        if (client == null) {
          client = build(SETTINGS.get());
        }
        s = client;
      }
    }
    return s;
  }

  private static Storage build(Settings s) {
    if (s == null) {
      return StorageOptions.getDefaultInstance().getService();
    }
    StorageOptions.Builder b = StorageOptions.newBuilder();
    if (s.endpoint != null && !s.endpoint.isEmpty()) {
      // Beam's endpoint names the JSON API root (…/storage/v1/); the client wants the host.
      b.setHost(s.endpoint.replaceFirst("/storage/v1/?$", ""));
    }
    boolean anonymous = s.credentials == null
        || s.credentials.getClass().getName().startsWith("org.apache.beam.sdk.extensions.gcp.auth.");
    b.setCredentials(anonymous ? NoCredentials.getInstance() : s.credentials);
    if (!s.project.isEmpty()) {
      b.setProjectId(s.project);
    }
    return b.build().getService();
  }

  /** What the client is built from; a change rebuilds it. */
  private static final class Settings {
    final String endpoint;
    final Credentials credentials;
    final String project;
    final int chunk;

    Settings(String endpoint, Credentials credentials, String project, int chunk) {
      this.endpoint = endpoint;
      this.credentials = credentials;
      this.project = project;
      this.chunk = chunk;
    }

    @Override
    public boolean equals(Object o) {
      if (!(o instanceof Settings)) {
        return false;
      }
      Settings s = (Settings) o;
      return java.util.Objects.equals(endpoint, s.endpoint) && credentials == s.credentials
          && project.equals(s.project) && chunk == s.chunk;
    }

    @Override
    public int hashCode() {
      return java.util.Objects.hash(endpoint, project, chunk);
    }
  }
}
