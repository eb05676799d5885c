package ckptbeam.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.pipelines.TestModels;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Collectors;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.testing.PAssert;
import org.apache.beam.sdk.values.PCollection;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The README's "Use it from your own Beam pipeline" example is this compiled code, and it converts. */
class ReadmeExampleTest {
  @TempDir Path work;

  @Test
  void theReadmeShowsTheCompiledExample() throws Exception {
    String readme = Files.readString(repo().resolve("README.md"));
    String source = Files.readString(repo().resolve(
        "pipelines/src/test/java/ckptbeam/examples/OwnPipelineExample.java"));
    String body = source.substring(source.indexOf("// README example begins\n") + 25,
        source.indexOf("    // README example ends"));
    String dedented = body.lines().map(l -> l.startsWith("    ") ? l.substring(4) : l)
        .collect(Collectors.joining("\n", "", "\n"));
    assertTrue(readme.contains(dedented), "README.md must show the example exactly as compiled:\n" + dedented);
  }

  @Test
  void theExampleConverts() throws Exception {
    Path hf = work.resolve("hf");
    TestModels.tiny(hf);
    String out = work.resolve("mcore").toString();
    Pipeline p = Pipeline.create(PipelineOptionsFactory.create());
    PCollection<String> report = OwnPipelineExample.build(p, hf.toString(), out);
    PAssert.that(report).containsInAnyOrder(out + ": CONVERTED, 8 files");
    p.run().waitUntilFinish();
    assertEquals("1", Files.readString(Path.of(out, "latest_checkpointed_iteration.txt")));
  }

  private static Path repo() {
    Path p = Path.of("").toAbsolutePath();
    while (!Files.exists(p.resolve("README.md")) || !Files.exists(p.resolve("pipelines"))) {
      p = p.getParent();
    }
    return p;
  }
}
