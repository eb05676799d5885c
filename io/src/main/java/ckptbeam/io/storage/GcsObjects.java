package ckptbeam.io.storage;

import com.google.auth.Credentials;
import com.google.cloud.NoCredentials;
import com.google.cloud.WriteChannel;
import com.google.cloud.storage.BlobInfo;
import com.google.cloud.storage.Storage;
import com.google.cloud.storage.StorageOptions;
import java.io.IOException;
import java.util.Map;
import java.util.Objects;
import java.util.concurrent.ConcurrentHashMap;
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
 * {@link StagedOutput#write} with each file (this class is loaded only when a gs:// file is written, so a job jar without the
 * GCS client still runs everything else).
 */
public final class GcsObjects {
  static final int DEFAULT_CHUNK = 64 << 20;
  /** One client per distinct settings (clients are thread-safe and costly to build). */
  private static final Map<Settings, Storage> CLIENTS = new ConcurrentHashMap<>();

  private GcsObjects() {}

  /** The endpoint, credentials, project and upload chunk size of a pipeline's options (null: the defaults). */
  static Settings settings(PipelineOptions options) {
    if (options == null) {
      return Settings.DEFAULTS;
    }
    GcsOptions gcs = options.as(GcsOptions.class);
    Credentials credentials = null;
    try {
      credentials = gcs.as(GcpOptions.class).getGcpCredential();
    } catch (RuntimeException e) {
      // no default credentials on this machine: unauthenticated (an emulator), or the upload fails with GCS's message
    }
    Integer chunk = gcs.getGcsUploadBufferSizeBytes();
    return new Settings(gcs.getGcsEndpoint(), credentials, gcs.getProject() == null ? "" : gcs.getProject(),
        chunk == null ? DEFAULT_CHUNK : chunk);
  }

  /**
   * Uploads the bytes {@code body} writes as object {@code gsPath}, with the client {@code options} call for (two
   * conversions with different options in one worker each get their own); returns the size and SHA-256.
   */
  static StagedOutput.Result write(String gsPath, StagedOutput.Body body, PipelineOptions options)
      throws IOException {
    Settings settings = settings(options);
    BlobInfo info = BlobInfo.newBuilder(bucket(gsPath), object(gsPath)).setContentType("application/octet-stream")
        .build();
    if (CLIENTS.size() > 16) {
      CLIENTS.clear(); // settings of long-gone pipelines
    }
    WriteChannel channel = CLIENTS.computeIfAbsent(settings, GcsObjects::build).writer(info);
    channel.setChunkSize(settings.chunk);
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

  private static Storage build(Settings s) {
    if (s == Settings.DEFAULTS) {
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
  static final class Settings {
    /** Outside a pipeline: the client library's defaults (application default credentials). */
    static final Settings DEFAULTS = new Settings(null, null, "", DEFAULT_CHUNK);
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
      return Objects.equals(endpoint, s.endpoint) && credentials == s.credentials && project.equals(s.project)
          && chunk == s.chunk;
    }

    @Override
    public int hashCode() {
      return Objects.hash(endpoint, project, chunk);
    }
  }
}
