package ckptbeam.pipelines;

import java.util.List;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.PipelineOptionsFactory;
import org.apache.beam.sdk.options.PipelineOptionsRegistrar;

/**
 * The pipeline options of the Flink and Dataflow runners and of Google Cloud, registered when a command needs them
 * rather than at start. Beam checks every registered options interface the first time it makes options (getters,
 * setters, annotations, defaults of each interface and its parents): with these registrars in the jar's service list
 * that took 3.6 s of a 3.8 s options probe here, 1.5 s without them. The launcher jar leaves them out of its list
 * (pipelines/pom.xml); the commands register them for a runner other than the DirectRunner, or when a flag is not
 * known without them ({@code --project}, {@code --gcsEndpoint}, {@code --flinkMaster}, ...). On a classpath whose jars
 * still list them (tests, an application that depends on our modules) they are registered already and this changes
 * nothing.
 */
final class RunnerOptions {
  private RunnerOptions() {}

  /** By name: the Flink job jar has no Dataflow or Google Cloud classes. */
  static final List<String> REGISTRARS = List.of(
      "org.apache.beam.runners.flink.FlinkRunnerRegistrar$Options",
      "org.apache.beam.runners.dataflow.DataflowPipelineRegistrar$Options",
      "org.apache.beam.sdk.extensions.gcp.options.GcpPipelineOptionsRegistrar",
      "org.apache.beam.sdk.io.gcp.common.GcpIoPipelineOptionsRegistrar");

  private static boolean registered;

  /** Whether {@code beamArgs} choose a runner other than the DirectRunner (the default). */
  static boolean needed(List<String> beamArgs) {
    return beamArgs.stream().anyMatch(a -> a.startsWith("--runner=") && !a.equals("--runner=DirectRunner")
        && !a.equalsIgnoreCase("--runner=direct"));
  }

  /** Registers every options interface of the registrars on the classpath; once. Returns false if it had been. */
  static synchronized boolean registerAll() {
    if (registered) {
      return false;
    }
    registered = true;
    for (String name : REGISTRARS) {
      PipelineOptionsRegistrar registrar;
      try {
        registrar = (PipelineOptionsRegistrar) Class.forName(name).getDeclaredConstructor().newInstance();
      } catch (ClassNotFoundException e) {
        continue;
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("cannot load the pipeline options registrar " + name, e);
      }
      for (Class<? extends PipelineOptions> options : registrar.getPipelineOptions()) {
        PipelineOptionsFactory.register(options);
      }
    }
    return true;
  }
}
