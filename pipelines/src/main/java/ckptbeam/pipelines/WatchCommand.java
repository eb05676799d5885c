package ckptbeam.pipelines;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.beam.CheckpointConversion;
import ckptbeam.transforms.beam.ConversionResult;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeMap;
import org.apache.beam.runners.flink.FlinkPipelineOptions;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.PipelineResult;
import org.apache.beam.sdk.coders.StringUtf8Coder;
import org.apache.beam.sdk.io.FileSystems;
import org.apache.beam.sdk.io.gcp.pubsub.PubsubIO;
import org.apache.beam.sdk.metrics.MetricNameFilter;
import org.apache.beam.sdk.metrics.MetricQueryResults;
import org.apache.beam.sdk.metrics.MetricResult;
import org.apache.beam.sdk.metrics.MetricsFilter;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.options.StreamingOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.Flatten;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.Values;
import org.apache.beam.sdk.transforms.Watch;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionList;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTagList;
import org.joda.time.Duration;

/**
 * {@code ckptbeam watch}: a streaming pipeline that converts every checkpoint folder appearing under a pattern, once,
 * when it is complete. New folders are found by polling the pattern ({@link Watch}, what {@code FileIO.match()
 * .continuously()} is built on) or from Cloud Storage notifications on a Pub/Sub subscription. Each checkpoint is
 * claimed once (keyed state) and converted into {@code SAVE_ROOT/NAME} by {@link CheckpointConversion}, the same
 * transform the batch commands run, so its target files fan out over every worker; each result is reported in
 * {@code SAVE_ROOT/NAME.ckptbeam-status.json}.
 */
public final class WatchCommand {
  private WatchCommand() {}

  static Args flags() {
    return new Args()
        .value("direction").help("hf2mcore|mcore2hf", "The conversion every checkpoint gets. Required.")
        .value("input-pattern").help("GLOB", "Checkpoint folders to watch, e.g. 'gs://b/incoming/*/'. Required.")
        .value("save-root").help("DIR", "Each checkpoint NAME is converted into SAVE_ROOT/NAME. Required.")
        .value("notifications").help("projects/P/subscriptions/S", "Read Cloud Storage OBJECT_FINALIZE notifications "
            + "from this Pub/Sub subscription instead of polling.")
        .value("poll-interval").help("SECONDS", "How often the pattern is listed.").defaultValue("10")
        .value("stop-after-idle").help("SECONDS", "End after this long without a new checkpoint, and print the "
            + "counts.")
        .flag("detach").help("Return once the job is submitted; it runs on the cluster or service until cancelled.");
  }

  /** Every flag watch knows: its own and those of the conversion. */
  private static List<String> allNames(Args own, Args conversion) {
    List<String> out = new ArrayList<>(own.names());
    out.addAll(conversion.names());
    return out;
  }

  /** The parsed command: what to watch, where to write, the conversion's own flags and the Beam options. */
  static final class Request {
    ConversionDirection direction;
    CheckpointFolders folders;
    String pattern;
    String notifications;
    Duration pollInterval;
    Duration stopAfterIdle;
    boolean detach;
    String[] conversionArgs;
    /** The conversion every checkpoint gets (its folders replaced per checkpoint). */
    ConversionRequest template;
    PipelineOptions pipelineOptions;
  }

  static Request parse(String[] argv) {
    Args a = flags().parse(argv);
    Request r = new Request();
    r.direction = ConversionDirection.parse(a.require("direction"));
    r.pattern = Cli.absolute(a.require("input-pattern"));
    r.folders = new CheckpointFolders(r.pattern, Cli.absolute(a.require("save-root")));
    r.notifications = a.get("notifications");
    r.pollInterval = Duration.standardSeconds(a.longValue("poll-interval", 10));
    r.stopAfterIdle = a.has("stop-after-idle") ? Duration.standardSeconds(a.longValue("stop-after-idle", 0)) : null;
    List<String> rest = a.beamArgs();
    Args conversion = r.direction.conversionFlags().parse(rest.toArray(new String[0]));
    for (String own : List.of("load-dir", "save-dir", "overwrite", "resume", "dry-run")) {
      if (conversion.has(own)) {
        throw new IllegalArgumentException("--" + own + " is set by watch for each checkpoint (input folder, "
            + "--save-root/NAME, resumed); leave it out");
      }
    }
    // the flags' form is checked now, not at the first checkpoint (their fit to a model, per checkpoint); each
    // conversion resumes what a crashed attempt finished and skips an output that is already complete
    String saveRoot = r.folders.outputOf("NAME");
    r.template = (r.direction == ConversionDirection.HF2MCORE ? Hf2Mcore.request(conversion, r.pattern, saveRoot)
        : Mcore2Hf.request(conversion, r.pattern, saveRoot))
        .withExistingOutput(ConversionRequest.ExistingOutput.RESUME);
    ModelTypeFlags.checkDirection(r.template);
    Set<String> beam = new HashSet<>(conversion.beamArgs());
    List<String> conversionArgs = new ArrayList<>();
    for (String s : rest) {
      if (!beam.contains(s)) {
        conversionArgs.add(s);
      }
    }
    r.conversionArgs = conversionArgs.toArray(new String[0]);
    r.pipelineOptions = Cli.pipelineOptions(conversion.beamArgs(), "watch", allNames(a, conversion));
    r.pipelineOptions.as(StreamingOptions.class).setStreaming(true);
    checkFixedInputs(r);
    r.detach = a.has("detach");
    if (r.detach) {
      // a Flink client in attached mode blocks in run() for as long as an unbounded job runs
      r.pipelineOptions.as(FlinkPipelineOptions.class).setAttachedMode(false);
    }
    return r;
  }

  /**
   * The files every checkpoint's conversion shares ({@code --model-config}, {@code --hf-cfg-dir}'s config) must exist
   * when the watch starts: missing, every checkpoint would wait for them forever.
   */
  private static void checkFixedInputs(Request r) {
    FileSystems.setDefaultPipelineOptions(r.pipelineOptions);
    try {
      if (r.template.modelConfig() != null && !CheckpointFiles.exists(r.template.modelConfig())) {
        throw new IllegalArgumentException("--model-config " + r.template.modelConfig() + ": no such file");
      }
      if (r.template.hfConfigDir() != null && r.template.modelConfig() == null
          && !CheckpointFiles.exists(CheckpointFiles.resolve(r.template.hfConfigDir(), "config.json"))) {
        throw new IllegalArgumentException("--hf-cfg-dir " + r.template.hfConfigDir() + " has no config.json");
      }
    } catch (IOException e) {
      throw new UncheckedIOException(e);
    }
  }

  public static void run(String[] argv, PrintStream log) throws Exception {
    Request r = parse(argv);
    Pipeline p = build(r, null);
    log.println("watching " + r.pattern + " (" + r.direction.flag + ") -> " + r.folders.outputOf("NAME")
        + (r.stopAfterIdle == null ? "" : "; stops after " + r.stopAfterIdle.getStandardSeconds() + " s without news"));
    if (r.detach) {
      PipelineResult submitted = p.run();
      log.println("submitted: " + submitted + " (runs until cancelled on the runner)");
      return;
    }
    PipelineResult result = Cli.run(p);
    if (result != null) {
      log.println("watch ended: " + summary(result));
    }
  }

  /**
   * The watch pipeline for {@code argv} (the flags of {@code ckptbeam watch}) with another notification source in
   * place of the Pub/Sub subscription: an embedding program's own event feed, or Beam's in-memory Pub/Sub client.
   */
  public static Pipeline pipeline(String[] argv, PTransform<PBegin, PCollection<String>> notificationSource) {
    return build(parse(argv), notificationSource);
  }

  /** The watch counters of a run: "N seen, N converted, N already converted, N failed, N bytes written, N polls". */
  public static String summary(PipelineResult result) {
    Map<String, Long> counts = new TreeMap<>();
    MetricQueryResults q = result.metrics().queryMetrics(MetricsFilter.builder()
        .addNameFilter(MetricNameFilter.inNamespace(RecordStatusFn.NAMESPACE)).build());
    for (MetricResult<Long> c : q.getCounters()) {
      Long v = c.getAttempted();
      counts.merge(c.getName().getName(), v == null ? 0L : v, Long::sum);
    }
    return counts.getOrDefault("checkpoints_seen", 0L) + " checkpoint(s) seen, "
        + counts.getOrDefault("checkpoints_converted", 0L) + " converted, "
        + counts.getOrDefault("checkpoints_already_converted", 0L) + " already converted, "
        + counts.getOrDefault("checkpoints_failed", 0L) + " failed, "
        + counts.getOrDefault("bytes_written", 0L) + " bytes written, "
        + counts.getOrDefault("polls", 0L) + " poll(s)";
  }

  /**
   * The streaming pipeline. {@code notificationSource} replaces the Pub/Sub read (tests use Beam's in-memory Pub/Sub
   * client); null reads {@code --notifications} when given, else polls the pattern.
   */
  static Pipeline build(Request r, PTransform<PBegin, PCollection<String>> notificationSource) {
    FileSystems.setDefaultPipelineOptions(r.pipelineOptions);
    Pipeline p = Pipeline.create(r.pipelineOptions);
    CheckpointReadiness readiness = new CheckpointReadiness(r.direction, r.conversionArgs, r.template);
    String marker = r.direction.outputMarker();
    PCollection<String> candidates;
    if (notificationSource != null || r.notifications != null) {
      PTransform<PBegin, PCollection<String>> source = notificationSource != null ? notificationSource
          : PubsubIO.readStrings().fromSubscription(r.notifications);
      candidates = p.apply("Notifications", source)
          .apply("FolderOfObject", ParDo.of(new FolderOfNotification(r.folders)));
    } else {
      Watch.Growth<String, String, String> growth = Watch.growthOf(
              new PollReadyCheckpoints(readiness, r.folders, marker, r.pollInterval.getMillis()))
          .withPollInterval(r.pollInterval)
          .withOutputCoder(StringUtf8Coder.of());
      if (r.stopAfterIdle != null) {
        growth = growth.withTerminationPerInput(Watch.Growth.afterTimeSinceNewOutput(r.stopAfterIdle));
      }
      candidates = p.apply("Pattern", Create.of(r.pattern)).apply("PollReadyFolders", growth)
          .apply("Folders", Values.create());
    }
    PCollectionTuple requests = candidates
        .apply("KeyByFolder", ClaimCheckpointFn.keyByFolder())
        .apply("ClaimOnce", ParDo.of(new ClaimCheckpointFn(readiness, r.folders, marker)))
        .apply("RequestOfFolder", ParDo.of(
                new RequestForFolderFn(r.template, r.folders, r.direction, r.conversionArgs))
            .withOutputTags(RequestForFolderFn.REQUESTS, TupleTagList.of(RequestForFolderFn.REFUSED)));
    PCollection<ConversionResult> converted = requests.get(RequestForFolderFn.REQUESTS)
        .setCoder(CheckpointConversion.requestCoder())
        .apply("Convert", CheckpointConversion.convert())
        .all();
    PCollectionList.of(converted).and(requests.get(RequestForFolderFn.REFUSED).setCoder(ConversionResult.coder()))
        .apply("AllResults", Flatten.pCollections())
        .apply("RecordStatus", ParDo.of(new RecordStatusFn(r.direction, List.of(r.conversionArgs), r.folders)));
    return p;
  }
}
