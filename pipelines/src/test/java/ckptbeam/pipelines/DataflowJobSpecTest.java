package ckptbeam.pipelines;

import static org.junit.jupiter.api.Assertions.assertTrue;

import com.google.cloud.NoCredentials;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.extensions.gcp.options.GcpOptions;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The conversion on Dataflow, offline: the complete job spec is built (a template written to a local file, with a
 * no-op path validator and stager) and checked: the pipeline's steps are there, options serialise, and no step
 * carries tensor bytes (the spec is a small fraction of the model).
 */
class DataflowJobSpecTest {
  @TempDir Path work;

  private static String[] dataflow(Path template) {
    return new String[] {"--runner=DataflowRunner", "--project=fake-project", "--region=us-central1",
        "--tempLocation=gs://fake-bucket/tmp", "--gcpTempLocation=gs://fake-bucket/tmp",
        "--stagingLocation=gs://fake-bucket/staging",
        "--pathValidatorClass=org.apache.beam.sdk.extensions.gcp.storage.NoopPathValidator",
        "--stagerClass=ckptbeam.pipelines.NoopStager", "--templateLocation=" + template};
  }

  @Test
  void hf2mcoreBuildsACompleteDataflowJobSpec() throws Exception {
    Path hf = work.resolve("hf");
    long modelBytes = TinyModel.write(hf, TinyModel.DEFAULTS);
    Path template = work.resolve("job.json");
    String[] args = concat(new String[] {"--load-dir", hf.toString(), "--save-dir", work.resolve("out").toString(),
        "--moe-grouped-gemm", "--target-expert-parallel-size", "2"}, dataflow(template));
    Hf2Mcore.Request r = Hf2Mcore.parse(args);
    r.pipelineOptions.as(GcpOptions.class).setGcpCredential(NoCredentials.getInstance());
    Pipeline p = Hf2Mcore.build(r, new PrintStream(new ByteArrayOutputStream())).pipeline;
    checkSpec(p, template, modelBytes, "ClaimOutput", "Plan", "FanOut", "WriteFiles", "Commit");
    assertTrue(!Files.exists(work.resolve("out/latest_checkpointed_iteration.txt")));
  }

  @Test
  void mcore2hfBuildsACompleteDataflowJobSpec() throws Exception {
    Path hf = work.resolve("hf");
    long modelBytes = TinyModel.write(hf, TinyModel.DEFAULTS);
    Path mcore = work.resolve("mcore");
    assertTrue(Main.run(new String[] {"hf2mcore", "--load-dir", hf.toString(), "--save-dir", mcore.toString(),
        "--target-tensor-parallel-size", "2", "--target-pipeline-parallel-size", "2"}, quiet(), quiet()) == 0);
    Path template = work.resolve("job.json");
    String[] args = concat(new String[] {"--load-dir", mcore.toString(), "--save-dir", work.resolve("back").toString(),
        "--source-tensor-parallel-size", "2", "--source-pipeline-parallel-size", "2"}, dataflow(template));
    Mcore2Hf.Request r = Mcore2Hf.parse(args);
    r.pipelineOptions.as(GcpOptions.class).setGcpCredential(NoCredentials.getInstance());
    checkSpec(Mcore2Hf.build(r, quiet()).pipeline, template, modelBytes, "ClaimOutput", "Plan", "FanOut",
        "WriteFiles", "Commit");
    assertTrue(!Files.exists(work.resolve("back/model.safetensors.index.json")));
  }

  @Test
  void watchBuildsAStreamingDataflowJobSpec() throws Exception {
    Path template = work.resolve("watch.json");
    String[] args = concat(new String[] {"--direction", "hf2mcore", "--input-pattern", "gs://fake-bucket/incoming/*/",
        "--save-root", "gs://fake-bucket/converted/", "--target-expert-parallel-size", "8"}, dataflow(template));
    WatchCommand.Request r = WatchCommand.parse(args);
    r.pipelineOptions.as(GcpOptions.class).setGcpCredential(NoCredentials.getInstance());
    WatchCommand.build(r, null).run();
    String spec = Files.readString(template);
    for (String step : List.of("PollReadyFolders", "ClaimOnce", "RequestOfFolder", "ClaimOutput", "Plan",
        "FanOut", "WriteFiles", "Commit", "RecordStatus")) {
      assertTrue(spec.contains(step), "the job spec lacks step " + step);
    }
    assertTrue(spec.contains("\"streaming\":true") || spec.contains("\"streaming\" : true"),
        "a streaming job");
    assertTrue(spec.contains("--target-expert-parallel-size=8"), "the conversion flags travel with the job");
  }

  /**
   * Builds the template and checks it: every named step, the options serialised, and a spec much smaller than the
   * model (no tensor bytes travel in it).
   */
  private static void checkSpec(Pipeline p, Path template, long modelBytes, String... steps) throws Exception {
    p.run();
    String spec = Files.readString(template);
    for (String step : steps) {
      assertTrue(spec.contains(step), "the job spec lacks step " + step);
    }
    assertTrue(spec.contains("\"sdkPipelineOptions\""), "options serialised into the job");
    assertTrue(spec.length() < modelBytes / 2, "job spec of " + spec.length() + " bytes for a model of " + modelBytes
        + ": tensor bytes must not travel in it");
  }

  private static PrintStream quiet() {
    return new PrintStream(new ByteArrayOutputStream());
  }

  private static String[] concat(String[] a, String[] b) {
    String[] out = new String[a.length + b.length];
    System.arraycopy(a, 0, out, 0, a.length);
    System.arraycopy(b, 0, out, a.length, b.length);
    return out;
  }
}
