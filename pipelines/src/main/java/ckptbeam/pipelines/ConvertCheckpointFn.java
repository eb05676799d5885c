package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.transforms.beam.CommitCheckpoint;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;

/**
 * Converts one complete checkpoint folder into its own folder under the save root and writes its status record
 * next to it; emits the record. A failed conversion is reported in its record and counted, never rethrown: one bad
 * checkpoint must not stop the others. Each conversion is the same one {@code hf2mcore}/{@code mcore2hf} runs, with
 * {@code --resume}, so a retried element keeps the files an interrupted attempt finished.
 */
final class ConvertCheckpointFn extends DoFn<String, String> {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();
  static final String NAMESPACE = "ckptbeam.watch";
  private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ConvertCheckpointFn.class);

  private final ConversionDirection direction;
  private final String[] conversionArgs;
  private final String[] forwardedBeamArgs;
  private final CheckpointFolders folders;
  private final Counter converted = Metrics.counter(NAMESPACE, "checkpoints_converted");
  private final Counter failed = Metrics.counter(NAMESPACE, "checkpoints_failed");
  private final Counter bytesWritten = Metrics.counter(NAMESPACE, "bytes_written");

  ConvertCheckpointFn(ConversionDirection direction, String[] conversionArgs, String[] forwardedBeamArgs,
      CheckpointFolders folders) {
    this.direction = direction;
    this.conversionArgs = conversionArgs.clone();
    this.forwardedBeamArgs = forwardedBeamArgs.clone();
    this.folders = folders;
  }

  @ProcessElement
  public void process(@Element String folder, OutputReceiver<String> out) throws IOException {
    String output = folders.outputOf(folder);
    List<String> argv = new ArrayList<>(List.of(conversionArgs));
    argv.addAll(List.of("--load-dir", folder, "--save-dir", output, "--resume"));
    argv.addAll(List.of(forwardedBeamArgs));
    ObjectNode status = JSON.createObjectNode();
    status.put("input", folder);
    status.put("output", output);
    status.put("direction", direction.flag);
    conversionArgs().forEach(status.putArray("options")::add);
    status.put("start", Instant.now().toString());
    ByteArrayOutputStream log = new ByteArrayOutputStream();
    Exception failure = null;
    try (PrintStream ps = new PrintStream(log, true, StandardCharsets.UTF_8)) {
      if (direction == ConversionDirection.HF2MCORE) {
        Hf2Mcore.run(argv.toArray(new String[0]), ps);
      } else {
        Mcore2Hf.run(argv.toArray(new String[0]), ps);
      }
      status.put("end", Instant.now().toString());
      status.put("state", "converted");
      summarise(output, status);
      converted.inc();
      bytesWritten.inc(status.get("bytes").asLong());
    } catch (Exception e) {
      failure = e;
      status.put("end", Instant.now().toString());
      status.put("state", "failed");
      status.put("error", Cli.rootMessage(e));
      failed.inc();
    }
    status.put("log", log.toString(StandardCharsets.UTF_8));
    if (status.has("error")) {
      LOG.warn("{}: conversion failed: {}", folder, status.get("error").asText(), failure);
    } else {
      LOG.info("{}: converted to {} ({} files, {} bytes)", folder, output, status.get("files").size(),
          status.get("bytes").asLong());
    }
    byte[] record = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(status);
    CheckpointFiles.writeSmallFile(folders.statusOf(folder), record);
    out.output(new String(record, StandardCharsets.UTF_8));
  }

  private List<String> conversionArgs() {
    return List.of(conversionArgs);
  }

  /** Files, tensor and byte counts from the conversion's manifest. */
  private static void summarise(String output, ObjectNode status) throws IOException {
    JsonNode manifest = JSON.readTree(CheckpointFiles.readSmallFile(
        CheckpointFiles.resolve(output, CommitCheckpoint.MANIFEST), 256L << 20));
    long tensors = 0;
    long bytes = 0;
    ArrayNode files = status.putArray("files");
    for (JsonNode f : manifest.get("files")) {
      ObjectNode entry = files.addObject();
      entry.put("path", f.get("path").asText());
      entry.put("size", f.get("size").asLong());
      entry.put("sha256", f.get("sha256").asText());
      tensors += f.has("tensors") ? f.get("tensors").size() : 0;
      bytes += f.get("size").asLong();
    }
    status.put("tensors", tensors);
    status.put("bytes", bytes);
  }
}
