package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertEquals;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.StreamSupport;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestStream;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.PCollection;
import org.joda.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * Watch's claim of a checkpoint folder holds state only while its conversion runs: once the output has its marker
 * the claim is cleared (a later event for the folder finds the marker: "already converted"); a failed conversion
 * keeps its claim (tried again only after a restart). A stand-in for the conversion writes the marker or a failed
 * status record as soon as the folder is claimed.
 */
class ClaimCheckpointTest {
  @TempDir Path work;

  /** Stands for the conversion: writes the output's marker, or a failed status record like RecordStatusFn's. */
  static final class FinishFn extends DoFn<String, String> {
    private final CheckpointFolders folders;
    private final boolean fail;

    FinishFn(CheckpointFolders folders, boolean fail) {
      this.folders = folders;
      this.fail = fail;
    }

    @ProcessElement
    public void process(@Element String folder, OutputReceiver<String> out) throws IOException {
      if (fail) {
        Files.createDirectories(Path.of(folders.statusOf(folder)).getParent());
        Files.writeString(Path.of(folders.statusOf(folder)), "{\"state\": \"failed\", \"start\": \""
            + java.time.Instant.now() + "\"}");
      } else {
        Path out0 = Files.createDirectories(Path.of(folders.outputOf(folder)));
        Files.writeString(out0.resolve("latest_checkpointed_iteration.txt"), "1");
      }
      out.output(folder);
    }
  }

  /** The folder's event arrives twice, 2 minutes apart; returns the "already converted" count. */
  private long alreadyConvertedAfterADuplicate(boolean conversionFails) throws Exception {
    Path in = work.resolve("in");
    Path folder = in.resolve("run-1");
    TinyModel.write(folder, TinyModel.DEFAULTS);
    CheckpointFolders folders = new CheckpointFolders(in + "/*", work.resolve("out").toString());
    StreamingOptions options = PipelineOptionsFactory.as(StreamingOptions.class);
    options.setStreaming(true);
    Pipeline p = Pipeline.create(options);
    PCollection<String> claimed = p.apply(TestStream.create(StringUtf8Coder.of())
            .addElements(folder.toString())
            .advanceProcessingTime(Duration.standardMinutes(2))
            .addElements(folder.toString())
            .advanceWatermarkToInfinity())
        .apply(ClaimCheckpointFn.keyByFolder())
        .apply(ParDo.of(new ClaimCheckpointFn(new CheckpointReadiness(ConversionDirection.HF2MCORE, new String[0]),
            folders, ConversionDirection.HF2MCORE.outputMarker())))
        .apply(ParDo.of(new FinishFn(folders, conversionFails)));
    PAssert.that(claimed).satisfies(c -> {
      assertEquals(1, StreamSupport.stream(c.spliterator(), false).count(), "claimed once");
      return null;
    });
    PipelineResult result = p.run();
    result.waitUntilFinish();
    long already = 0;
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder().addNameFilter(
        MetricNameFilter.named(RecordStatusFn.NAMESPACE, "checkpoints_already_converted")).build()).getCounters()) {
      already += c.getAttempted();
    }
    return already;
  }

  @Test
  void aConvertedFolderIsKnownByItsMarkerNotByState() throws Exception {
    assertEquals(1, alreadyConvertedAfterADuplicate(false), "the claim was cleared; the marker answered");
  }

  @Test
  void aFailedConversionKeepsItsClaim() throws Exception {
    assertEquals(0, alreadyConvertedAfterADuplicate(true), "the claim dropped the duplicate");
  }
}
