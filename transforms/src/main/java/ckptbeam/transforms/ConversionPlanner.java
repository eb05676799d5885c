package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.StagedOutput;
import ckptbeam.io.storage.Sha256;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.regex.Pattern;

/**
 * Plans {@link ConversionRequest}s: one {@link KindPlanner} per kind of conversion reads the input's small files
 * (config, index, tracker), validates the layout against the model, and decides every target file, the commit and
 * where the sources are. Pure Java: the same code checks a request on the driver before a job is submitted
 * ({@link #check}) and plans it inside the pipeline, so a request's errors are the same wherever they are found.
 * What the planners share (the input's identity, the fingerprint, the manifest's header, side files) is here.
 */
public final class ConversionPlanner {
  public static final String VERSION = "0.1.0";
  /** Small files copied from the input folder so that the other direction and training find them. */
  public static final List<String> SIDE_FILES = List.of("config.json", "generation_config.json", "tokenizer.json",
      "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "configuration_deepseek.py",
      "modeling_deepseek.py");
  /** The names MindSpeed's converter copies from {@code --hf-cfg-dir} ({@link #hfConfigFiles}). */
  private static final Pattern HF_CONFIG_FILE = Pattern.compile("[^/]*\\.json|[^/]*\\.model(\\.[^./]+)?|[^/]*\\.jinja"
      + "|merges\\.txt|(modeling|configuration|tokenization)_[^/]*\\.py|sample_finetune\\.py");
  private static final ObjectMapper JSON = new ObjectMapper();
  private static final Map<ConversionRequest.Kind, KindPlanner> PLANNERS = new EnumMap<>(Map.of(
      ConversionRequest.Kind.HF2MCORE, new Hf2McorePlanner(),
      ConversionRequest.Kind.FP8_TO_BF16, new Fp8ToBf16Planner(),
      ConversionRequest.Kind.MCORE2HF, new McoreInputPlanner(),
      ConversionRequest.Kind.MCORE2MCORE, new McoreInputPlanner(),
      ConversionRequest.Kind.LORA_EXPORT, new McoreInputPlanner()));

  private ConversionPlanner() {}

  /**
   * Checks a request against its input without writing anything: config, layout rules, index, every shard or rank
   * file present. Headers and pickles are not read here: they are read once, file by file, when the sources are
   * located ({@link CheckedConversion#sources}). Throws {@link IllegalArgumentException} ({@link LayoutException}
   * for the layout) for options that do not fit the model, {@link IOException} for input that is missing or
   * malformed.
   */
  public static CheckedConversion check(ConversionRequest r) throws IOException {
    if (!CheckpointFiles.isDirectory(r.loadDir())) {
      throw new IOException("--load-dir " + r.loadDir() + ": no such directory");
    }
    return PLANNERS.get(r.kind()).plan(r, true);
  }

  /**
   * The plan, commit, fingerprint and source locator of a request that {@link #check} accepted, derived again from
   * its small files (config, tracker, the index for fp8-to-bf16): how a worker gets them, as the request alone
   * travels through the pipeline. Callers compare the fingerprint with the one planned: a different one means the
   * input changed meanwhile. No notes; the sources' file list is not known for HF input (the elements carry it).
   */
  public static CheckedConversion derive(ConversionRequest r) throws IOException {
    return PLANNERS.get(r.kind()).plan(r, false);
  }

  /** The file that marks a complete output of this kind, written last: the tracker or the HF index. */
  public static String markerName(ConversionRequest.Kind kind) {
    return kind == ConversionRequest.Kind.HF2MCORE || kind == ConversionRequest.Kind.MCORE2MCORE
        ? Hf2McorePlan.TRACKER : SafetensorsIndex.FILE_NAME;
  }

  /** The output's layout resolved against the model it is written for; its errors say so. */
  static LayoutOptions targetLayout(LayoutOptions layout, ModelConfig cfg) {
    try {
      return layout.resolve(cfg);
    } catch (LayoutException e) {
      throw e.on(LayoutException.Side.TARGET);
    }
  }

  /** About how many bytes a layout's rank files take (bf16, as nearly every tensor is). */
  static long plannedBytes(Hf2McorePlan plan) {
    long planned = 0;
    for (RankFile f : plan.rankFiles()) {
      planned += plannedBytes(plan.plan(f));
    }
    return planned;
  }

  /** About how many bytes one rank file takes (bf16). */
  static long plannedBytes(Hf2McorePlan.RankPlan rank) {
    long planned = 0;
    for (List<AssembledTensor> chunk : rank.contents.values()) {
      for (AssembledTensor t : chunk) {
        planned += t.shape().numel() * 2;
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
  static List<SourceFile> shards(String loadDir, SafetensorsIndex index) throws IOException {
    Map<String, List<String>> byShard = new TreeMap<>();
    index.weightMap().forEach((name, shard) -> byShard.computeIfAbsent(shard, x -> new ArrayList<>()).add(name));
    List<SourceFile> shards = new ArrayList<>();
    for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
      String path = CheckpointFiles.resolve(loadDir, e.getKey());
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": the index names this shard (for \"" + e.getValue().get(0)
            + "\") but it does not exist");
      }
      CheckpointFiles.checkInside(loadDir, path);
      shards.add(new SourceFile(path, e.getValue()));
    }
    return shards;
  }

  /**
   * A note on the folder's {@code *.safetensors} files that the index does not name: they are not read (loaders that
   * go by the index never see them either), but nothing is left out silently.
   */
  static List<String> unindexedShardsNote(String loadDir, SafetensorsIndex index) throws IOException {
    java.util.Set<String> named = new java.util.HashSet<>(index.weightMap().values());
    List<String> extra = SafetensorsIndex.topLevelShards(loadDir).stream().filter(f -> !named.contains(f)).toList();
    return extra.isEmpty() ? List.of() : List.of(extra.size() + " *.safetensors file(s) in " + loadDir + " are not "
        + "named by its index and are not read, e.g. " + extra.get(0));
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

  /**
   * fp8-to-bf16's side files: every file under the input folder, at any depth (tokenizer, chat template, code such as
   * {@code inference/*.py}, README, licence), except checkpoint content (weights in any format and their indexes,
   * {@link CheckpointCommit#looksLikeCheckpointContent}), config.json (written anew), hidden files and folders
   * ({@code .git}, {@code .cache}), our own records, and the save dir when it lies inside the input folder; a link
   * out of the folder is refused. Source path → path relative to the save dir.
   */
  static Map<String, String> modelFolderFiles(String dir, String saveDir) throws IOException {
    String root = ConversionRequest.withoutTrailingSlash(dir) + "/";
    String save = ConversionRequest.withoutTrailingSlash(saveDir) + "/";
    String saveInside = save.startsWith(root) ? save.substring(root.length()) : null;
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : CheckpointFiles.list(dir)) {
      boolean skipped = CheckpointCommit.looksLikeCheckpointContent(name)
          || name.equals("config.json") || name.equals(CheckpointCommit.MANIFEST)
          || name.startsWith(".") || name.contains("/.") || name.endsWith(StagedOutput.STAGING_SUFFIX)
          || saveInside != null && name.startsWith(saveInside);
      if (!skipped) {
        String path = CheckpointFiles.resolve(dir, name);
        CheckpointFiles.checkInside(dir, path);
        out.put(path, name);
      }
    }
    return out;
  }

  /**
   * The files an HF output gets from MindSpeed's {@code --hf-cfg-dir}: as its converter, the folder's own files (not
   * its subfolders') named {@code *.json}, {@code *.model}, {@code *.model.X}, {@code *.jinja}, {@code merges.txt},
   * {@code modeling_*.py}, {@code configuration_*.py}, {@code tokenization_*.py} or {@code sample_finetune.py};
   * unlike it, never an index ({@code *.index.json}: it names another checkpoint's shards, and the output's own index
   * is its completion marker), our manifest, or {@code config.json} (written from the model, §5.3 of
   * docs/mapping.md).
   */
  static Map<String, String> hfConfigFiles(String dir) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : CheckpointFiles.list(dir)) {
      boolean copied = !name.contains("/") && HF_CONFIG_FILE.matcher(name).matches() && !name.endsWith(".index.json")
          && !List.of("config.json", CheckpointCommit.MANIFEST).contains(name);
      if (copied) {
        out.put(CheckpointFiles.resolve(dir, name), name);
      }
    }
    return out;
  }

  /** The SHA-256 of the input's small files (index, config, tracker) that exist: the input's identity. */
  static Map<String, String> identity(String loadDir, String... names) throws IOException {
    Map<String, String> out = new LinkedHashMap<>();
    for (String name : names) {
      String sha = sha256IfExists(CheckpointFiles.resolve(loadDir, name));
      if (sha != null) {
        out.put(name, sha);
      }
    }
    return out;
  }

  static String sha256IfExists(String path) throws IOException {
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
    if (r.hfConfigDir() != null) {
      b.append("hf-cfg-dir=").append(r.hfConfigDir()).append('\n');
    }
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

  /** The manifest's header: tool, command, provenance (the options as given), the input's identity, fingerprint. */
  static OutputRecords.Manifest manifestHeader(ConversionRequest r, Map<String, String> identity, String fingerprint) {
    Map<String, String> options = r.options();
    if (options.isEmpty()) {
      // a request built in code rather than from flags: record what it says
      options.put("request", r.describe().strip().replace('\n', ';'));
    }
    return OutputRecords.header(r.kind().command, options, r.loadDir(), identity, fingerprint);
  }

  /** config.json for HF output: the input's, with the layer structure the output actually has. */
  static byte[] outputConfig(byte[] original, ModelConfig in, ModelConfig out) throws IOException {
    boolean sameLayers = in.hiddenLayers == out.hiddenLayers && in.firstKDenseReplace == out.firstKDenseReplace
        && in.nextnPredictLayers == out.nextnPredictLayers;
    if (sameLayers && !in.fp8) {
      return original;
    }
    ObjectNode json = (ObjectNode) JSON.readTree(original);
    // the rank files hold bf16 (hf2mcore dequantised an FP8 release): the HF output must not claim FP8
    json.remove("quantization_config");
    if (!sameLayers) {
      json.put("num_hidden_layers", out.hiddenLayers);
      json.put("num_nextn_predict_layers", out.nextnPredictLayers);
      if (out.v4()) {
        // one compress ratio per decoder and MTP layer
        ArrayNode ratios = json.putArray("compress_ratios");
        int[] r = in.compressRatios();
        for (int i = 0; i < out.hiddenLayers + out.nextnPredictLayers; i++) {
          ratios.add(i < r.length ? r[i] : 0);
        }
      } else {
        json.put("first_k_dense_replace", out.firstKDenseReplace);
      }
    }
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
