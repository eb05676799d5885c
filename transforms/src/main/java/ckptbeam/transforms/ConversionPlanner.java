package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.TreeMap;
import java.util.TreeSet;

/**
 * Plans one {@link ConversionRequest}: reads the input's small files (config, index, tracker), validates the layout
 * against the model, decides every target file, and locates every source tensor from headers. Pure Java: the same
 * code checks a request on the driver before a job is submitted ({@link #check}) and plans it inside the pipeline
 * ({@link #plan}), so a request's errors are the same wherever they are found.
 */
public final class ConversionPlanner {
  public static final String VERSION = "0.1.0";
  /** Small files copied from the input folder so that the other direction and training find them. */
  public static final List<String> SIDE_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "configuration_deepseek.py",
      "modeling_deepseek.py");
  private static final ObjectMapper JSON = new ObjectMapper();

  private ConversionPlanner() {}

  /** A request checked against its input: what it writes and from what, before any source is located. */
  public static final class Checked {
    public final ConversionRequest request;
    public final ConversionPlan plan;
    public final CheckpointCommit commit;
    /** Identifies the conversion and its input; a resumed run keeps only files recorded with the same one. */
    public final String fingerprint;
    /** Things the user should know that are not errors (input tensors the layout leaves out). */
    public final List<String> notes;
    /** About how many bytes the data files take (bf16), for the disk-space preflight. */
    public final long plannedBytes;
    /** The HF shards with the tensors the index places in each (HF input only). */
    public final List<ShardRef> shards;
    private final ModelConfig config;
    private final LoraOptions lora;
    /** HF input: where every indexed tensor is, read from the shard headers while checking. */
    private final Map<String, TensorLocation> hfLocated;

    Checked(ConversionRequest request, ConversionPlan plan, Commit commit, List<String> notes, long plannedBytes,
        List<ShardRef> shards, ModelConfig config, LoraOptions lora, Map<String, TensorLocation> hfLocated) {
      this.request = request;
      this.plan = plan;
      this.commit = commit.commit();
      this.fingerprint = commit.fingerprint();
      this.notes = List.copyOf(notes);
      this.plannedBytes = plannedBytes;
      this.shards = shards;
      this.config = config;
      this.lora = lora;
      this.hfLocated = hfLocated;
    }

    /**
     * Whether the save dir already holds this very conversion, complete: its marker, and a manifest with the same
     * fingerprint. Only asked for with {@link ConversionRequest.ExistingOutput#RESUME}.
     */
    public boolean alreadyConverted() throws IOException {
      return request.existingOutput() == ConversionRequest.ExistingOutput.RESUME
          && CheckpointFiles.exists(CheckpointFiles.resolve(request.saveDir(), commit.markerName()))
          && fingerprint.equals(recordedFingerprint(CheckpointCommit.MANIFEST));
    }

    /**
     * The fingerprint a manifest or progress record in the save dir carries ({@code relative} to it); empty when the
     * file is missing or torn (it will be written again).
     */
    private String recordedFingerprint(String relative) throws IOException {
      String path = CheckpointFiles.resolve(request.saveDir(), relative);
      if (!CheckpointFiles.exists(path)) {
        return "";
      }
      try {
        JsonNode root = JSON.readTree(CheckpointFiles.readSmallFile(path, 256L << 20));
        return root == null ? "" : root.path("fingerprint").asText();
      } catch (JsonProcessingException e) {
        return "";
      }
    }

    /**
     * Read-only save-dir rules, the same for a local folder and a gs:// prefix: it must not be a file; one that holds
     * anything is refused with {@link ConversionRequest.ExistingOutput#REFUSE}; with
     * {@link ConversionRequest.ExistingOutput#RESUME} it must hold this conversion or nothing of another (its manifest
     * and progress records carry the fingerprint of the conversion that wrote them); a local one must have room for
     * the data files (less what a resumed run keeps; an estimate, there to fail before hours of writing).
     */
    public void checkSaveDir() throws IOException {
      String saveDir = request.saveDir();
      if (CheckpointFiles.isLocal(saveDir)) {
        Path dir = CheckpointFiles.localPath(saveDir);
        if (Files.exists(dir) && !Files.isDirectory(dir)) {
          throw new IOException("--save-dir " + saveDir + " exists and is not a directory");
        }
      }
      List<String> present = CheckpointFiles.list(saveDir);
      if (!present.isEmpty() && request.existingOutput() == ConversionRequest.ExistingOutput.REFUSE) {
        throw new IOException("--save-dir " + saveDir + " is not empty"
            + (present.contains(commit.markerName()) ? " (it holds a checkpoint)" : " (it holds " + present.size()
            + " file(s), e.g. " + present.get(0) + ")") + "; pass --overwrite to replace its content");
      }
      if (request.existingOutput() == ConversionRequest.ExistingOutput.RESUME) {
        String other = otherConversion(present);
        if (other != null) {
          throw new IOException("--save-dir " + saveDir + " holds " + other + "; --resume continues only the same "
              + "conversion (same input, layout and LoRA settings): pass --overwrite to replace it");
        }
      }
      if (plannedBytes > 0 && CheckpointFiles.isLocal(saveDir)
          && request.existingOutput() != ConversionRequest.ExistingOutput.RESUME) {
        Path dir = CheckpointFiles.localPath(saveDir);
        while (dir != null && !Files.exists(dir)) {
          dir = dir.getParent();
        }
        long free = dir == null ? Long.MAX_VALUE : Files.getFileStore(dir).getUsableSpace();
        if (free < plannedBytes) {
          throw new IOException("--save-dir " + saveDir + ": the conversion writes about " + plannedBytes / (1 << 20)
              + " MiB but only " + free / (1 << 20) + " MiB are free there");
        }
      }
    }

    /**
     * What of another conversion the save dir holds, or null: a manifest or a progress record with another
     * fingerprint (a torn one is ignored: it will be written again).
     */
    private String otherConversion(List<String> present) throws IOException {
      String record = present.contains(CheckpointCommit.MANIFEST) ? CheckpointCommit.MANIFEST
          : present.stream().filter(f -> f.startsWith(ProgressRecord.DIR + "/")).findFirst().orElse(null);
      String theirs = record == null ? "" : recordedFingerprint(record);
      if (theirs.isEmpty() || theirs.equals(fingerprint)) {
        return null;
      }
      return (record.equals(CheckpointCommit.MANIFEST) ? "the output" : "part of the output") + " of another "
          + "conversion (" + record + " has fingerprint " + theirs.substring(0, Math.min(12, theirs.length()))
          + "…, this one is " + fingerprint.substring(0, 12) + "…)";
    }

    /**
     * Makes the save dir ready to be written: the rules of {@link #checkSaveDir}, then the completion marker and the
     * manifest are removed, so an old output can never pass for the new one while it is being replaced.
     */
    public void prepareSaveDir() throws IOException {
      checkSaveDir();
      String saveDir = request.saveDir();
      CheckpointFiles.deleteIfExists(List.of(CheckpointFiles.resolve(saveDir, commit.markerName()),
          CheckpointFiles.resolve(saveDir, CheckpointCommit.MANIFEST)));
    }

    /** Where every source of every target is, read from the input's headers (never tensor bytes). */
    public Map<String, Map<String, TensorLocation>> locateSources() throws IOException {
      Map<String, TensorLocation> located;
      switch (request.kind()) {
        case HF2MCORE:
        case FP8_TO_BF16:
          located = hfLocated;
          if (config.fp8) {
            located = SourceLocator.dequantizeFp8(located, config.fp8BlockRows, config.fp8BlockCols);
          }
          break;
        case MCORE2HF:
          located = SourceLocator.rankFiles((Mcore2HfPlan) plan, request.loadDir(), lora);
          break;
        case MCORE2MCORE:
          located = SourceLocator.rankFiles(((Mcore2McorePlan) plan).source(), request.loadDir(), lora);
          break;
        case LORA_EXPORT:
          LoraExportPlan export = (LoraExportPlan) plan;
          located = SourceLocator.loraFactors(export.rankFiles(), lora.loraDir != null ? lora.loraDir
              : request.loadDir());
          break;
        default:
          throw new IllegalStateException(request.kind().toString());
      }
      Map<String, Map<String, TensorLocation>> out = new LinkedHashMap<>();
      for (String target : plan.targets()) {
        Map<String, TensorLocation> sources = SourceLocator.forTarget(plan, target, located);
        for (AssembledTensor t : plan.tensorsOf(target)) {
          TensorAssembler.dtypeOf(t, sources); // mixed dtypes are refused here, before any file is written
        }
        out.put(target, sources);
      }
      return out;
    }
  }

  /**
   * Checks a request against its input without writing anything: config, layout rules, index, every shard or rank
   * file present; for HF input also every shard header (a tensor in two shards is refused, one the index does not
   * name is noted). Tensor bytes are never read. Throws {@link IllegalArgumentException} for options that do not fit
   * the model, {@link IOException} for input that is missing or malformed.
   */
  public static Checked check(ConversionRequest r) throws IOException {
    return check(r, true);
  }

  /**
   * The plan, commit and fingerprint of a request that {@link #check} accepted, derived again from its small files
   * (config, tracker, the index for fp8-to-bf16) without reading a shard header or rank-file pickle: how a writer
   * and the commit step get the plan, which travels through the pipeline as the request alone. Callers compare the
   * fingerprint with the one planned: a different one means the input changed meanwhile. No notes, no located
   * sources.
   */
  public static Checked derive(ConversionRequest r) throws IOException {
    return check(r, false);
  }

  private static Checked check(ConversionRequest r, boolean validate) throws IOException {
    if (validate && !CheckpointFiles.isDirectory(r.loadDir())) {
      throw new IOException("--load-dir " + r.loadDir() + ": no such directory");
    }
    switch (r.kind()) {
      case HF2MCORE:
        return checkHf2Mcore(r, validate);
      case MCORE2HF:
      case LORA_EXPORT:
      case MCORE2MCORE:
        return checkMcoreInput(r, validate);
      case FP8_TO_BF16:
        return checkFp8ToBf16(r, validate);
      default:
        throw new IllegalStateException(r.kind().toString());
    }
  }

  private static Checked checkHf2Mcore(ConversionRequest r, boolean validate) throws IOException {
    String configPath = CheckpointFiles.resolve(r.loadDir(), "config.json");
    ModelConfig cfg = ModelConfig.read(configPath);
    LayoutOptions layout = targetLayout(r.layout(), cfg);
    Hf2McorePlan plan = new Hf2McorePlan(cfg, layout);
    if (!validate) {
      return new Checked(r, plan, hf2mcoreCommit(r, plan, layout), List.of(), -1, null, cfg, null, null);
    }
    SafetensorsIndex index = SafetensorsIndex.read(r.loadDir());
    // one pass over the plan: the HF tensors it reads, and the bytes it will write (bf16, as nearly every tensor is)
    Map<String, Shape> needed = new LinkedHashMap<>();
    long planned = 0;
    for (RankFile f : plan.rankFiles()) {
      Hf2McorePlan.RankPlan rank = plan.plan(f);
      needed.putAll(rank.sources);
      for (List<AssembledTensor> chunk : rank.contents.values()) {
        for (AssembledTensor t : chunk) {
          planned += t.shape().numel() * 2;
        }
      }
    }
    List<String> missing = new ArrayList<>();
    for (String name : needed.keySet()) {
      if (!index.weightMap().containsKey(name)) {
        missing.add(name);
      }
    }
    if (!missing.isEmpty()) {
      throw new IOException(CheckpointFiles.resolve(r.loadDir(), SafetensorsIndex.FILE_NAME) + ": " + missing.size()
          + " tensor(s) the layout needs are not in the index, e.g. \"" + missing.get(0) + "\"");
    }
    if (!cfg.dsaIndexer()) {
      // a V3.2 checkpoint read with a V3 config would silently lose its indexer
      String indexer = index.weightMap().keySet().stream().filter(n -> n.contains(".self_attn.indexer.")).findFirst()
          .orElse(null);
      if (indexer != null) {
        throw new IOException(CheckpointFiles.resolve(r.loadDir(), SafetensorsIndex.FILE_NAME) + ": holds DeepSeek-V3.2 "
            + "DSA indexer tensors (e.g. \"" + indexer + "\") that config.json does not declare (no model_type "
            + "deepseek_v32 / index_n_heads); they would not be converted");
      }
    }
    List<ShardRef> shards = shardRefs(r.loadDir(), index);
    Map<String, String> unindexed = new TreeMap<>();
    Map<String, TensorLocation> located = SourceLocator.hfShards(shards, unindexed);
    TreeSet<String> ignored = new TreeSet<>(index.weightMap().keySet());
    ignored.removeAll(needed.keySet());
    if (cfg.fp8) {
      // the block scales of the FP8 weights are used to dequantise them
      ignored.removeIf(n -> n.endsWith(SourceLocator.SCALE_SUFFIX)
          && needed.containsKey(n.substring(0, n.length() - SourceLocator.SCALE_SUFFIX.length())));
    }
    List<String> notes = new ArrayList<>();
    if (!ignored.isEmpty()) {
      notes.add(ignored.size() + " input tensor(s) are not part of this layout and are not converted, e.g. "
          + ignored.first() + mtpHint(cfg, layout));
    }
    unindexedNote(unindexed).ifPresent(notes::add);
    return new Checked(r, plan, hf2mcoreCommit(r, plan, layout), notes, planned, shards, cfg, null, located);
  }

  /** The commit of an hf2mcore request (its manifest header carries the fingerprint). */
  private static Commit hf2mcoreCommit(ConversionRequest r, Hf2McorePlan plan, LayoutOptions layout)
      throws IOException {
    Map<String, String> identity = identity(r.loadDir(), SafetensorsIndex.FILE_NAME, "config.json");
    String fingerprint = fingerprint(r, identity, layout);
    return new Commit(new CheckpointCommit(r.saveDir(), plan.targets(), sideFiles(r.loadDir()), Map.of(),
        Hf2McorePlan.TRACKER, CheckpointCommit.tracker(Hf2McorePlan.ITERATION), manifestHeader(r, identity,
        fingerprint)), fingerprint);
  }

  /** The output's layout resolved against the model it is written for; its errors say so. */
  private static LayoutOptions targetLayout(LayoutOptions layout, ModelConfig cfg) {
    try {
      return layout.resolve(cfg);
    } catch (LayoutException e) {
      throw e.on(LayoutException.Side.TARGET);
    }
  }

  /** A conversion's commit and the fingerprint its manifest records. */
  private record Commit(CheckpointCommit commit, String fingerprint) {}

  private static Checked checkMcoreInput(ConversionRequest r, boolean validate) throws IOException {
    String configPath = r.modelConfig() != null ? r.modelConfig()
        : CheckpointFiles.resolve(r.loadDir(), "config.json");
    if (r.modelConfig() == null && !CheckpointFiles.exists(configPath)) {
      throw new IOException("no --model-config given and " + configPath + " does not exist (hf2mcore copies the HF "
          + "config.json there; pass --model-config FILE)");
    }
    ModelConfig in = ModelConfig.read(configPath);
    Hf2McorePlan forward = Mcore2HfPlan.forwardPlan(in, r.layout());
    LoraOptions lora = null;
    if (r.lora() != null) {
      String loraDir = r.lora().loraDir;
      lora = new LoraOptions(r.lora().rank, r.lora().alpha, loraDir,
          loraDir == null ? null : McoreTracker.iterationDir(loraDir));
    }
    Map<String, String> identity = identity(r.loadDir(), McoreTracker.FILE_NAME);
    identity.put("config.json", sha256IfExists(configPath));
    if (lora != null && lora.loraDir != null) {
      identity.put("lora/" + McoreTracker.FILE_NAME,
          sha256IfExists(CheckpointFiles.resolve(lora.loraDir, McoreTracker.FILE_NAME)));
    }
    identity.values().removeIf(v -> v == null);
    LayoutOptions to = null;
    if (r.kind() == ConversionRequest.Kind.MCORE2MCORE) {
      // what hf2mcore would do with the HF checkpoint mcore2hf writes: its config, the new layout
      to = r.targetLayout();
      if (to.mtpLayers() != r.layout().mtpLayers() || to.firstKDense() != r.layout().firstKDense()) {
        throw new LayoutException(List.of(LayoutException.Setting.MTP_LAYERS, " and ",
            LayoutException.Setting.FIRST_K_DENSE, " are shared by both layouts: the source and target must agree"));
      }
      to = targetLayout(to, forward.config());
    }
    String fingerprint = fingerprint(r, identity, forward.options(), to);
    byte[] header = manifestHeader(r, identity, fingerprint);
    String iterationDir = McoreTracker.iterationDir(r.loadDir());
    if (r.kind() == ConversionRequest.Kind.LORA_EXPORT) {
      String iteration = lora.loraDir != null ? lora.loraIterationDir : iterationDir;
      LoraExportPlan plan = new LoraExportPlan(forward, iteration, lora.rank, r.loraTargetModules());
      CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), Map.of(),
          Map.of("adapter_config.json", PythonJson.write(plan.adapterConfig(lora.alpha), 2)),
          SafetensorsIndex.FILE_NAME, new IndexMarker(plan), header);
      return new Checked(r, plan, new Commit(commit, fingerprint), List.of(), -1, null, in, lora, null);
    }
    Mcore2HfPlan plan = new Mcore2HfPlan(forward, iterationDir);
    for (String rank : validate ? plan.rankFiles() : List.<String>of()) {
      String path = CheckpointFiles.resolve(r.loadDir(), rank);
      if (!CheckpointFiles.exists(path)) {
        LayoutOptions o = forward.options();
        throw new IOException(path + ": rank file missing; the layout it was written with (tensor/pipeline/expert "
            + "parallel sizes " + o.tp() + "/" + o.pp() + "/" + o.ep() + ") needs " + plan.rankFiles().size()
            + " of them");
      }
    }
    Map<String, byte[]> generated = Map.of("config.json", outputConfig(configPath, in, forward.config()));
    if (to != null) {
      Hf2McorePlan target = new Hf2McorePlan(forward.config(), to);
      Mcore2McorePlan both = new Mcore2McorePlan(plan, target);
      CheckpointCommit commit = new CheckpointCommit(r.saveDir(), both.targets(), sideFiles(r.loadDir(),
          "config.json"), generated, Hf2McorePlan.TRACKER, CheckpointCommit.tracker(Hf2McorePlan.ITERATION), header);
      return new Checked(r, both, new Commit(commit, fingerprint), List.of(), plannedBytes(target), null, in, lora,
          null);
    }
    CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), sideFiles(r.loadDir(), "config.json"),
        generated, SafetensorsIndex.FILE_NAME, new IndexMarker(plan), header);
    return new Checked(r, plan, new Commit(commit, fingerprint), List.of(), -1, null, in, lora, null);
  }

  private static Checked checkFp8ToBf16(ConversionRequest r, boolean validate) throws IOException {
    String configPath = CheckpointFiles.resolve(r.loadDir(), "config.json");
    ModelConfig cfg = ModelConfig.read(configPath);
    if (!cfg.fp8) {
      throw new IOException(configPath + " declares no quantization_config: the checkpoint is not FP8");
    }
    SafetensorsIndex index = SafetensorsIndex.read(r.loadDir());
    Fp8ToBf16Plan plan = new Fp8ToBf16Plan(index);
    List<ShardRef> shards = validate ? shardRefs(r.loadDir(), index) : null;
    Map<String, String> unindexed = new TreeMap<>();
    Map<String, TensorLocation> located = validate ? SourceLocator.hfShards(shards, unindexed) : null;
    Map<String, String> identity = identity(r.loadDir(), SafetensorsIndex.FILE_NAME, "config.json");
    String fingerprint = fingerprint(r, identity);
    ObjectNode config = (ObjectNode) JSON.readTree(CheckpointFiles.readSmallFile(configPath, 16L << 20));
    config.remove("quantization_config");
    CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), sideFiles(r.loadDir(), "config.json"),
        Map.of("config.json", PythonJson.write(config, 2)), SafetensorsIndex.FILE_NAME, new IndexMarker(plan),
        manifestHeader(r, identity, fingerprint));
    return new Checked(r, plan, new Commit(commit, fingerprint), unindexedNote(unindexed).stream().toList(), -1,
        shards, cfg, null, located);
  }

  /** The note on tensors stored in shards that the index does not name. */
  private static Optional<String> unindexedNote(Map<String, String> unindexed) {
    if (unindexed.isEmpty()) {
      return Optional.empty();
    }
    Map.Entry<String, String> first = unindexed.entrySet().iterator().next();
    return Optional.of(unindexed.size() + " tensor(s) stored in shards but absent from the index are not "
        + "converted, e.g. " + first.getKey() + " in " + first.getValue());
  }

  /** About how many bytes a layout's rank files take (bf16, as nearly every tensor is). */
  private static long plannedBytes(Hf2McorePlan plan) {
    long planned = 0;
    for (RankFile f : plan.rankFiles()) {
      for (List<AssembledTensor> chunk : plan.contents(f).values()) {
        for (AssembledTensor t : chunk) {
          planned += t.shape().numel() * 2;
        }
      }
    }
    return planned;
  }

  /** A hint when the input has MTP layers that the chosen layout leaves out. */
  public static String mtpHint(ModelConfig cfg, LayoutOptions o) {
    if (cfg.nextnPredictLayers > o.mtpLayers()) {
      return " (the checkpoint has " + cfg.nextnPredictLayers + " MTP layer(s); pass --mtp-num-layers "
          + cfg.nextnPredictLayers + " to convert them)";
    }
    return "";
  }

  /**
   * The shards an index names, each with the tensors the index places in it; every shard must exist and stay inside
   * the checkpoint folder (no symbolic link out of it).
   */
  static List<ShardRef> shardRefs(String loadDir, SafetensorsIndex index) throws IOException {
    Map<String, List<String>> byShard = new TreeMap<>();
    index.weightMap().forEach((name, shard) -> byShard.computeIfAbsent(shard, x -> new ArrayList<>()).add(name));
    List<ShardRef> shards = new ArrayList<>();
    for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
      String path = CheckpointFiles.resolve(loadDir, e.getKey());
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": the index names this shard (for \"" + e.getValue().get(0)
            + "\") but it does not exist");
      }
      CheckpointFiles.checkInside(loadDir, path);
      shards.add(new ShardRef(path, e.getValue()));
    }
    return shards;
  }

  /** Side files (config, tokenizer) present in {@code dir}, to copy, except those named in {@code except}. */
  static Map<String, String> sideFiles(String dir, String... except) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : SIDE_FILES) {
      String path = CheckpointFiles.resolve(dir, name);
      if (!List.of(except).contains(name) && CheckpointFiles.exists(path)) {
        out.put(path, name);
      }
    }
    return out;
  }

  /** The SHA-256 of the input's small files (index, config, tracker) that exist: the input's identity. */
  private static Map<String, String> identity(String loadDir, String... names) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : names) {
      String sha = sha256IfExists(CheckpointFiles.resolve(loadDir, name));
      if (sha != null) {
        out.put(name, sha);
      }
    }
    return out;
  }

  private static String sha256IfExists(String path) throws IOException {
    return CheckpointFiles.exists(path) ? Sha256.ofFile(path) : null;
  }

  /**
   * A conversion's identity: what decides its output's bytes. The tool version, the kind, the input folder and the
   * SHA-256 of its small files (config, index, tracker: the input's identity), the layouts with every default filled
   * in from the model ({@code resolved}), the LoRA merge and export settings. Never how the flags were spelled (an
   * explicit default, an alias, a relative path): those are provenance, recorded in the manifest. Two requests with
   * the same fingerprint write the same bytes; a resumed run keeps only files recorded with its own fingerprint.
   */
  static String fingerprint(ConversionRequest r, Map<String, String> identity, LayoutOptions... resolved) {
    StringBuilder b = new StringBuilder(VERSION).append('\n').append(r.kind()).append('\n');
    b.append("load-dir=").append(r.loadDir()).append('\n');
    for (LayoutOptions layout : resolved) {
      if (layout != null) {
        b.append("layout=").append(layout).append('\n');
      }
    }
    ConversionRequest.Lora lora = r.lora();
    b.append("lora=").append(lora == null ? "-" : "r=" + lora.rank + " alpha=" + Double.toString(lora.alpha)
        + " load=" + lora.loraDir).append('\n');
    b.append("lora-target-modules=").append(r.loraTargetModules()).append('\n');
    identity.forEach((k, v) -> b.append(k).append(':').append(v).append('\n'));
    return Sha256.of(b.toString().getBytes(StandardCharsets.UTF_8));
  }

  private static byte[] manifestHeader(ConversionRequest r, Map<String, String> identity, String fingerprint) {
    ObjectNode root = JSON.createObjectNode();
    root.put("tool", "ckptbeam");
    root.put("version", VERSION);
    root.put("command", r.kind().command);
    ObjectNode opts = root.putObject("options");
    Map<String, String> options = r.options();
    if (options.isEmpty()) {
      // a request built in code rather than from flags: record what it says
      options.put("request", r.describe().strip().replace('\n', ';'));
    }
    options.forEach(opts::put);
    ObjectNode input = root.putObject("input");
    input.put("dir", r.loadDir());
    ObjectNode id = input.putObject("sha256");
    identity.forEach(id::put);
    root.put("fingerprint", fingerprint);
    try {
      return JSON.writeValueAsBytes(root);
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }

  /** config.json for HF output: the input's, with the layer structure the output actually has. */
  static byte[] outputConfig(String path, ModelConfig in, ModelConfig out) throws IOException {
    byte[] original = CheckpointFiles.readSmallFile(path, 16L << 20);
    if (in.hiddenLayers == out.hiddenLayers && in.firstKDenseReplace == out.firstKDenseReplace
        && in.nextnPredictLayers == out.nextnPredictLayers) {
      return original;
    }
    ObjectNode json = (ObjectNode) JSON.readTree(original);
    json.put("num_hidden_layers", out.hiddenLayers);
    json.put("first_k_dense_replace", out.firstKDenseReplace);
    json.put("num_nextn_predict_layers", out.nextnPredictLayers);
    return PythonJson.write(json, 2);
  }

  /** The HF index, with the total size of the tensors written; it marks an HF output complete. */
  static final class IndexMarker implements CheckpointCommit.Marker {
    private static final long serialVersionUID = 1L;
    private final IndexedPlan plan;

    IndexMarker(IndexedPlan plan) {
      this.plan = plan;
    }

    @Override
    public byte[] content(List<WrittenFile> written) {
      return plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum());
    }
  }

  /** A plan whose output is an HF checkpoint with an index. */
  interface IndexedPlan extends ConversionPlan {
    byte[] indexJson(long totalSize);
  }
}
