package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.Sha256;
import ckptbeam.io.TensorLocation;
import ckptbeam.transforms.ConversionPlan;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.LocateSources;
import ckptbeam.transforms.beam.RequestSources;
import ckptbeam.transforms.beam.WriteTargets;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;

/**
 * What every conversion command shares: the save-dir rules ({@code --overwrite}, {@code --resume}), the identity of
 * the input and the options (the manifest header and the fingerprint a resumed run must match), and the pipeline's
 * tail: what each target needs → where it is → one writer per target → commit.
 */
final class Conversion {
  static final String VERSION = "0.1.0";
  private static final ObjectMapper JSON = new ObjectMapper();

  final String command;
  final String loadDir;
  final String saveDir;
  final boolean overwrite;
  final boolean resume;
  private final Map<String, String> options = new TreeMap<>();
  private final Map<String, String> identity = new LinkedHashMap<>();

  Conversion(String command, Args args, String loadDir, String saveDir) {
    this.command = command;
    this.loadDir = loadDir;
    this.saveDir = saveDir;
    this.overwrite = args.has("overwrite");
    this.resume = args.has("resume");
    if (overwrite && resume) {
      throw new IllegalArgumentException("--overwrite and --resume exclude each other");
    }
    args.values().forEach((k, v) -> {
      if (!k.equals("overwrite") && !k.equals("resume") && !k.equals("dry-run") && !k.equals("save-dir")) {
        boolean path = k.equals("load-dir") || k.equals("lora-load") || k.equals("model-config");
        options.put(k, path ? Cli.absolute(v) : v);
      }
    });
  }

  /** Records the SHA-256 of a small input file (index, config, tracker) as part of the input's identity. */
  Conversion identify(String name, String path) throws IOException {
    if (CheckpointFiles.exists(path)) {
      identity.put(name, Sha256.ofFile(path));
    }
    return this;
  }

  /**
   * An existing non-empty save dir is refused unless {@code --overwrite} or {@code --resume}; either way the
   * completion marker and the manifest are removed first, so the old output can never pass for the new one.
   */
  void prepareSaveDir(String marker) throws IOException {
    Cli.prepareSaveDir(saveDir, overwrite || resume, marker);
    CheckpointFiles.deleteIfExists(List.of(CheckpointFiles.resolve(saveDir, CommitCheckpoint.MANIFEST)));
  }

  /**
   * Preflight for a local save dir: the disk must have room for {@code plannedBytes} (less what a resumed run
   * keeps). An estimate is enough: it is there to fail before hours of writing, not to be exact.
   */
  void checkSpace(long plannedBytes) throws IOException {
    if (!CheckpointFiles.isLocal(saveDir)) {
      return;
    }
    java.nio.file.Path dir = java.nio.file.Paths.get(saveDir);
    while (dir != null && !java.nio.file.Files.exists(dir)) {
      dir = dir.getParent();
    }
    if (dir == null) {
      return;
    }
    long free = java.nio.file.Files.getFileStore(dir).getUsableSpace();
    if (!resume && free < plannedBytes) {
      throw new IOException("--save-dir " + saveDir + ": the conversion writes about " + plannedBytes / (1 << 20)
          + " MiB but only " + free / (1 << 20) + " MiB are free there");
    }
  }

  /** Same tool, command, options and input: a resumed run may keep what the interrupted one finished. */
  String fingerprint() {
    StringBuilder b = new StringBuilder(VERSION).append('\n').append(command).append('\n');
    options.forEach((k, v) -> b.append(k).append('=').append(v).append('\n'));
    identity.forEach((k, v) -> b.append(k).append(':').append(v).append('\n'));
    return Sha256.of(b.toString().getBytes(StandardCharsets.UTF_8));
  }

  byte[] manifestHeader() {
    ObjectNode root = JSON.createObjectNode();
    root.put("tool", "ckptbeam");
    root.put("version", VERSION);
    root.put("command", command);
    ObjectNode opts = root.putObject("options");
    options.forEach(opts::put);
    ObjectNode input = root.putObject("input");
    input.put("dir", loadDir);
    ObjectNode id = input.putObject("sha256");
    identity.forEach(id::put);
    root.put("fingerprint", fingerprint());
    try {
      return JSON.writeValueAsBytes(root);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /**
   * The shards an index names, each with the tensors the index places in it; every shard must exist and stay inside
   * the checkpoint folder (no symbolic link out of it). Checked before anything is written.
   */
  static List<ckptbeam.transforms.beam.ShardRef> shardRefs(String loadDir, ckptbeam.io.SafetensorsIndex index)
      throws IOException {
    Map<String, List<String>> byShard = new TreeMap<>();
    index.weightMap().forEach((name, shard) -> byShard.computeIfAbsent(shard, x -> new ArrayList<>()).add(name));
    List<ckptbeam.transforms.beam.ShardRef> shards = new ArrayList<>();
    for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
      String path = CheckpointFiles.resolve(loadDir, e.getKey());
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": the index names this shard (for \"" + e.getValue().get(0)
            + "\") but it does not exist");
      }
      CheckpointFiles.checkInside(loadDir, path);
      shards.add(new ckptbeam.transforms.beam.ShardRef(path, e.getValue()));
    }
    return shards;
  }

  /** Side files (config, tokenizer) present in {@code dir}, to copy, except those named in {@code except}. */
  static Map<String, String> sideFiles(String dir, String... except) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : Hf2Mcore.SIDE_FILES) {
      String path = CheckpointFiles.resolve(dir, name);
      if (!List.of(except).contains(name) && CheckpointFiles.exists(path)) {
        out.put(path, name);
      }
    }
    return out;
  }

  /** Joins the located sources with the plan's needs, writes every target, and commits with the manifest. */
  void write(Pipeline p, PCollection<KV<String, TensorLocation>> locations, ConversionPlan plan,
      CommitCheckpoint commit) {
    PCollectionTuple.of(LocateSources.LOCATIONS.getId(), locations)
        .and(LocateSources.REQUESTS.getId(), p.apply("RequestSources", RequestSources.of(plan)))
        .apply("LocateSources", LocateSources.create())
        .apply("WriteFiles", WriteTargets.of(plan, saveDir).withProgress(fingerprint(), resume))
        .apply("Commit", commit.withManifest(manifestHeader()));
  }

  /** The files a finished conversion holds besides the data files. */
  static List<String> withExtras(List<String> data, String... extras) {
    List<String> out = new ArrayList<>(data);
    out.addAll(List.of(extras));
    return out;
  }
}
