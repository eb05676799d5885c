package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.beam.ConversionResult;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.time.Instant;
import java.util.List;
import org.apache.beam.sdk.metrics.Counter;
import org.apache.beam.sdk.metrics.Metrics;
import org.apache.beam.sdk.transforms.DoFn;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * Writes the status record of each converted checkpoint next to its output ({@code SAVE_ROOT/NAME.ckptbeam-status
 * .json}) and counts it; emits the record. A failed conversion is reported in its record, never rethrown: one bad
 * checkpoint must not stop the others.
 */
final class RecordStatusFn extends DoFn<ConversionResult, String> {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();
  static final String NAMESPACE = "ckptbeam.watch";
  private static final Logger LOG = LoggerFactory.getLogger(RecordStatusFn.class);

  private final ConversionDirection direction;
  private final List<String> conversionArgs;
  private final CheckpointFolders folders;
  private final Counter converted = Metrics.counter(NAMESPACE, "checkpoints_converted");
  private final Counter alreadyConverted = Metrics.counter(NAMESPACE, "checkpoints_already_converted");
  private final Counter failed = Metrics.counter(NAMESPACE, "checkpoints_failed");
  private final Counter bytesWritten = Metrics.counter(NAMESPACE, "bytes_written");

  RecordStatusFn(ConversionDirection direction, List<String> conversionArgs, CheckpointFolders folders) {
    this.direction = direction;
    this.conversionArgs = List.copyOf(conversionArgs);
    this.folders = folders;
  }

  @ProcessElement
  public void process(@Element ConversionResult result, OutputReceiver<String> out) throws IOException {
    String folder = result.request.loadDir();
    ObjectNode status = JSON.createObjectNode();
    status.put("input", folder);
    status.put("output", result.request.saveDir());
    status.put("direction", direction.flag);
    conversionArgs.forEach(status.putArray("options")::add);
    status.put("start", Instant.ofEpochMilli(result.startMillis).toString());
    status.put("end", Instant.ofEpochMilli(result.endMillis).toString());
    if (result.state == ConversionResult.State.FAILED) {
      status.put("state", "failed");
      status.put("error", result.message);
      failed.inc();
      LOG.warn("{}: conversion failed: {}", folder, result.message);
    } else {
      status.put("state", result.state == ConversionResult.State.CONVERTED ? "converted" : "already converted");
      ArrayNode files = status.putArray("files");
      for (ConversionResult.File f : result.files) {
        ObjectNode entry = files.addObject();
        entry.put("path", f.path);
        entry.put("size", f.size);
        entry.put("sha256", f.sha256);
      }
      status.put("tensors", result.tensors());
      status.put("bytes", result.bytes());
      if (result.state == ConversionResult.State.CONVERTED) {
        converted.inc();
        bytesWritten.inc(result.bytes());
      } else {
        alreadyConverted.inc();
      }
      LOG.info("{}: converted to {} ({} files, {} bytes)", folder, result.request.saveDir(), result.files.size(),
          result.bytes());
    }
    StringBuilder log = new StringBuilder();
    result.notes.forEach(n -> log.append("note: ").append(n).append('\n'));
    status.put("log", log.toString());
    byte[] record = JSON.writerWithDefaultPrettyPrinter().writeValueAsBytes(status);
    CheckpointFiles.writeSmallFile(folders.statusOf(folder), record);
    out.output(new String(record, StandardCharsets.UTF_8));
  }
}
