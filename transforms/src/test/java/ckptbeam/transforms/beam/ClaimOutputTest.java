package ckptbeam.transforms.beam;

import static org.junit.jupiter.api.Assertions.assertEquals;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.StreamSupport;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.coders.KvCoder;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.testing.TestStream;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTagList;
import org.apache.beam.sdk.values.TypeDescriptors;
import org.joda.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The claim of a save dir in a streaming pipeline: a duplicate is dropped while the conversion may run; the claim of
 * a request that resumes is cleared once the output has its marker, any claim after its time to live, so the state does not grow with every
 * conversion a long-running watch has seen (a duplicate after that is claimed again, and finds the output complete).
 */
class ClaimOutputTest {
  @TempDir Path work;

  /** The request arrives, then again after {@code wait}: it gets through ClaimOutput {@code expected} times. */
  private void claims(Path saveDir, Duration wait, long expected) {
    claims(saveDir, ConversionRequest.ExistingOutput.RESUME, wait, expected);
  }

  private void claims(Path saveDir, ConversionRequest.ExistingOutput mode, Duration wait, long expected) {
    StreamingOptions options = PipelineOptionsFactory.as(StreamingOptions.class);
    options.setStreaming(true);
    Pipeline p = Pipeline.create(options);
    ConversionRequest r = ConversionRequest.hf2mcore(work.resolve("hf").toString(), saveDir.toString(),
        LayoutOptions.defaults()).withExistingOutput(mode);
    KvCoder<String, ConversionRequest> coder = KvCoder.of(StringUtf8Coder.of(), ConversionCoders.RequestCoder.INSTANCE);
    TestStream<KV<String, ConversionRequest>> events = TestStream.create(coder)
        .addElements(KV.of(r.saveDir(), r))
        .advanceProcessingTime(wait)
        .addElements(KV.of(r.saveDir(), r))
        .advanceWatermarkToInfinity();
    PCollectionTuple claimed = p.apply(events).apply(ParDo.of(new ClaimOutputFn())
        .withOutputTags(CheckpointConversion.CLAIMED, TupleTagList.of(CheckpointConversion.CONFLICTS)));
    claimed.get(CheckpointConversion.CONFLICTS).setCoder(ConversionResult.coder());
    PCollection<String> dirs = claimed.get(CheckpointConversion.CLAIMED).setCoder(ConversionCoders.RequestCoder.INSTANCE)
        .apply(MapElements.into(TypeDescriptors.strings()).via(ConversionRequest::saveDir));
    PAssert.that(dirs).satisfies(ds -> {
      assertEquals(expected, StreamSupport.stream(ds.spliterator(), false).count(), "claims");
      return null;
    });
    p.run().waitUntilFinish();
  }

  @Test
  void aDuplicateWhileTheConversionMayRunIsDropped() {
    claims(work.resolve("running"), Duration.standardMinutes(30), 1);
  }

  @Test
  void theClaimEndsWhenTheOutputHasItsMarker() throws Exception {
    Path done = Files.createDirectories(work.resolve("done"));
    Files.writeString(done.resolve("latest_checkpointed_iteration.txt"), "1");
    claims(done, Duration.standardMinutes(2), 2);
  }

  /** A request that overwrites would write a finished output again: its claim is kept until the TTL. */
  @Test
  void aClaimThatOverwritesIsKeptDespiteAMarker() throws Exception {
    Path done = Files.createDirectories(work.resolve("done"));
    Files.writeString(done.resolve("latest_checkpointed_iteration.txt"), "1");
    claims(done, ConversionRequest.ExistingOutput.OVERWRITE, Duration.standardMinutes(2), 1);
  }

  @Test
  void aClaimWithoutMarkerEndsAfterItsTimeToLive() {
    claims(work.resolve("failed"), ClaimOutputFn.CLAIM_TTL.plus(Duration.standardMinutes(2)), 2);
  }
}
