package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.storage.Sha256;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.beam.CheckpointConversion;
import ckptbeam.transforms.beam.ConversionResult;
import ckptbeam.transforms.beam.ConversionResults;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.FileTime;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.transforms.Count;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.display.DisplayData;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * {@link CheckpointConversion} as a library: requests in, results out, on the DirectRunner with PAssert, on tiny
 * generated models (no torch). The commands' end-to-end checks are in the integration tests.
 */
class CheckpointConversionTest {
  private static final String TRACKER = "latest_checkpointed_iteration.txt";
  @TempDir Path work;
  private Path hf;

  @BeforeEach
  void model() throws Exception {
    hf = work.resolve("hf");
    TinyModel.write(hf, TinyModel.DEFAULTS);
  }

  private static LayoutOptions layout(int tp, int ep) {
    return LayoutOptions.builder().tp(tp).ep(ep).groupedGemm(true).build();
  }

  private static Pipeline pipeline() {
    return Pipeline.create(PipelineOptionsFactory.create());
  }

  /** Runs the transform on {@code requests}; PAssert checks the results' states by save dir. */
  private PipelineResult convert(Map<String, String> expectedStates, ConversionRequest... requests) {
    Pipeline p = pipeline();
    PCollection<ConversionResult> results = p
        .apply(Create.of(List.of(requests)))
        .apply(CheckpointConversion.convert())
        .all();
    PAssert.that(results).satisfies(rs -> {
      Map<String, String> states = new TreeMap<>();
      for (ConversionResult r : rs) {
        String before = states.put(r.request.saveDir(), r.state + (r.message == null ? "" : ": " + r.message));
        assertEquals(null, before, "one result per save dir, got two for " + r.request.saveDir());
      }
      assertEquals(expectedStates.keySet(), states.keySet());
      expectedStates.forEach((dir, state) -> assertTrue(states.get(dir).startsWith(state), states.get(dir)));
      return null;
    });
    PipelineResult result = p.run();
    result.waitUntilFinish();
    return result;
  }

  @Test
  void everyRequestGetsItsResultAndAFailedOneLeavesNoMarker() throws Exception {
    Path noConfig = work.resolve("no-config");
    Files.createDirectories(noConfig);
    String a = work.resolve("a").toString();
    String b = work.resolve("b").toString();
    String bad = work.resolve("bad").toString();
    PipelineResult run = convert(Map.of(a, "CONVERTED", b, "CONVERTED", bad, "FAILED: " + noConfig
            .resolve("config.json") + ": no such file"),
        ConversionRequest.hf2mcore(hf.toString(), a, layout(1, 1)),
        ConversionRequest.hf2mcore(noConfig.toString(), bad, layout(1, 1)),
        ConversionRequest.hf2mcore(hf.toString(), b, layout(2, 4)));
    assertEquals("1", Files.readString(Path.of(a, TRACKER)));
    assertEquals(8, countFiles(Path.of(b), "model_optim_rng.pt"), "tp2 ep4: 8 rank files");
    assertFalse(Files.exists(Path.of(bad, TRACKER)));
    assertEquals(9L, counter(run, "files_written"), "1 + 8 rank files written");
    assertEquals(2L, counter(run, "conversions_converted"));
    assertEquals(1L, counter(run, "conversions_failed"));
  }

  @Test
  void duplicatesOfOneRequestConvertOnceAndADifferentRequestForTheSameOutputFails() throws Exception {
    String out = work.resolve("out").toString();
    ConversionRequest r = ConversionRequest.hf2mcore(hf.toString(), out, layout(2, 2));
    PipelineResult run = convert(Map.of(out, "CONVERTED"), r, r, r);
    assertEquals(4L, counter(run, "files_written"), "4 rank files, written once");

    Pipeline p = pipeline();
    PCollection<ConversionResult> results = p
        .apply(Create.of(List.of(r.withExistingOutput(ConversionRequest.ExistingOutput.RESUME),
            ConversionRequest.hf2mcore(hf.toString(), out, layout(1, 1)))).withCoder(CheckpointConversion.requestCoder()))
        .apply(CheckpointConversion.convert())
        .all();
    PAssert.that(results).satisfies(rs -> {
      List<String> states = new ArrayList<>();
      rs.forEach(x -> states.add(x.state.toString()));
      states.sort(null);
      // whichever claims the folder first: the other is refused, never run into the same folder
      assertEquals(2, states.size(), states.toString());
      assertTrue(states.contains("FAILED"), states.toString());
      return null;
    });
    p.run().waitUntilFinish();
  }

  @Test
  void resultsComeSplitIntoSucceededAndFailedWithDisplayData() throws Exception {
    Path noConfig = Files.createDirectories(work.resolve("no-config"));
    String good = work.resolve("good").toString();
    String bad = work.resolve("bad").toString();
    String expectedFailure = bad + " FAILED " + noConfig.resolve("config.json") + ": no such file (the model "
        + "dimensions are read from it)";
    Pipeline p = pipeline();
    ConversionResults results = p
        .apply(Create.of(ConversionRequest.hf2mcore(hf.toString(), good, layout(1, 1)),
            ConversionRequest.hf2mcore(noConfig.toString(), bad, layout(1, 1))))
        .apply(CheckpointConversion.convert());
    PAssert.that(results.succeeded()).satisfies(rs -> {
      List<String> dirs = new ArrayList<>();
      rs.forEach(r -> dirs.add(r.request.saveDir() + " " + r.state));
      assertEquals(List.of(good + " CONVERTED"), dirs);
      return null;
    });
    PAssert.that(results.failed()).satisfies(rs -> {
      List<String> dirs = new ArrayList<>();
      rs.forEach(r -> dirs.add(r.request.saveDir() + " " + r.state + " " + r.message));
      assertEquals(List.of(expectedFailure), dirs);
      return null;
    });
    PAssert.thatSingleton(results.all().apply(Count.globally())).isEqualTo(2L);
    p.run().waitUntilFinish();
    DisplayData display = DisplayData.from(CheckpointConversion.convert());
    assertTrue(display.items().stream().anyMatch(i -> i.getKey().equals("metricsNamespace")
        && "ckptbeam".equals(i.getValue())), display.toString());
  }

  @Test
  void theSameConversionSpelledOtherwiseClaimsTheOutputOnce() throws Exception {
    String out = work.resolve("out").toString();
    ConversionRequest r = ConversionRequest.hf2mcore(hf.toString(), out, layout(2, 2));
    // the model's num_hidden_layers and first_k_dense_replace: the defaults, spelled out
    LayoutOptions explicit = layout(2, 2).toBuilder().numLayers(4).firstKDense(1).build();
    ConversionRequest same = ConversionRequest.hf2mcore(hf.toString(), out, explicit)
        .withOptions(Map.of("target-pipeline-parallel-size", "1", "num-layers", "4"));
    assertFalse(r.equals(same), "different as given");
    PipelineResult run = convert(Map.of(out, "CONVERTED"), r, same);
    assertEquals(4L, counter(run, "files_written"), "4 rank files, written once");
  }

  @Test
  void aCompleteOutputOfTheSameConversionIsAlreadyConvertedAndUntouched() throws Exception {
    String out = work.resolve("out").toString();
    ConversionRequest r = ConversionRequest.hf2mcore(hf.toString(), out, layout(1, 2));
    convert(Map.of(out, "CONVERTED"), r);
    Path tracker = Path.of(out, TRACKER);
    Files.setLastModifiedTime(tracker, FileTime.fromMillis(1_000_000));
    String manifest = Sha256.ofFile(Path.of(out, "ckptbeam-manifest.json").toString());

    PipelineResult again = convert(Map.of(out, "ALREADY_CONVERTED"),
        r.withExistingOutput(ConversionRequest.ExistingOutput.RESUME));
    assertEquals(FileTime.fromMillis(1_000_000), Files.getLastModifiedTime(tracker));
    assertEquals(manifest, Sha256.ofFile(Path.of(out, "ckptbeam-manifest.json").toString()));
    assertEquals(0L, counter(again, "files_written"));

    // another layout into the same folder is another conversion: written anew
    convert(Map.of(out, "CONVERTED"), ConversionRequest.hf2mcore(hf.toString(), out, layout(2, 2))
        .withExistingOutput(ConversionRequest.ExistingOutput.OVERWRITE));
    assertEquals(4, countFiles(Path.of(out), "model_optim_rng.pt"), "tp2 ep2: 4 rank files (2 of them replaced)");
  }

  @Test
  void theTransformWritesTheSameBytesAsTheCommand() throws Exception {
    Path viaCommand = work.resolve("cli");
    assertEquals(0, Main.run(new String[] {"hf2mcore", "--load-dir", hf.toString(), "--save-dir",
        viaCommand.toString(), "--moe-grouped-gemm", "--target-tensor-parallel-size", "2",
        "--target-expert-parallel-size", "4"}, new PrintStream(new ByteArrayOutputStream()),
        System.err));
    String viaTransform = work.resolve("api").toString();
    convert(Map.of(viaTransform, "CONVERTED"), ConversionRequest.hf2mcore(hf.toString(), viaTransform, layout(2, 4)));
    for (Path f : rankFiles(viaCommand)) {
      assertArrayEquals(Files.readAllBytes(f), Files.readAllBytes(Path.of(viaTransform).resolve(viaCommand
          .relativize(f))), f.toString());
    }
    assertEquals(8, rankFiles(viaCommand).size());
  }

  private static List<Path> rankFiles(Path dir) throws Exception {
    try (var s = Files.walk(dir)) {
      return s.filter(f -> f.getFileName().toString().equals("model_optim_rng.pt")).sorted().toList();
    }
  }

  private static int countFiles(Path dir, String name) throws Exception {
    try (var s = Files.walk(dir)) {
      return (int) s.filter(f -> f.getFileName().toString().equals(name)).count();
    }
  }

  private static long counter(PipelineResult result, String name) {
    long total = 0;
    for (MetricResult<Long> c : result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.named(CheckpointConversion.METRICS_NAMESPACE, name)).build()).getCounters()) {
      total += c.getAttempted();
    }
    return total;
  }
}
