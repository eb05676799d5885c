package ckptbeam.transforms;

import ckptbeam.io.storage.CheckpointFiles;
import java.io.Serializable;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.TreeMap;

/**
 * One conversion to run: what kind, from which checkpoint folder to which, with which layout and options. Immutable;
 * the {@code with…} methods return changed copies. A request is a small description: it travels through a pipeline
 * to the worker that plans it, which reads the input and decides every target file.
 *
 * <p>{@link #options()} is the request's provenance as the user gave it (the command's flags); it is recorded in the
 * output's manifest. It is not part of the conversion's identity: equality and the fingerprint a resumed run must
 * match come from the typed fields.
 */
public final class ConversionRequest implements Serializable {
  private static final long serialVersionUID = 1L;

  /** What a request converts. */
  public enum Kind {
    /** HF safetensors (bf16 or DeepSeek's FP8) → mcore rank files. */
    HF2MCORE("hf2mcore"),
    /** mcore rank files → HF safetensors, LoRA merged when asked. */
    MCORE2HF("mcore2hf"),
    /** mcore rank files → the LoRA factors alone, in PEFT form ({@code --save-lora-to-hf}). */
    LORA_EXPORT("mcore2hf"),
    /** DeepSeek's FP8 release → bf16 safetensors, file for file. */
    FP8_TO_BF16("fp8-to-bf16"),
    /** mcore rank files of one layout → mcore rank files of another, in one pass, LoRA merged when asked. */
    MCORE2MCORE("mcore2mcore");

    /** The command that runs this kind. */
    public final String command;

    Kind(String command) {
      this.command = command;
    }
  }

  /** What to do when the save dir already holds something. */
  public enum ExistingOutput {
    /** A non-empty save dir is an error. */
    REFUSE,
    /** The marker and manifest are removed first, then every file is written again. */
    OVERWRITE,
    /**
     * Files an interrupted run of the same conversion finished are kept; an output already complete for the same
     * conversion is reported as already converted and left untouched.
     */
    RESUME
  }

  // set once, by the factories and the with… copies below; never changed after a request is returned
  private Kind kind;
  private String loadDir;
  private String saveDir;
  private LayoutOptions layout;
  /** The output's layout (mcore → mcore only; {@link #layout} is then the input's). */
  private LayoutOptions targetLayout;
  private String modelConfig;
  /** MindSpeed's {@code --hf-cfg-dir}: the HF folder whose config and tokenizer files the HF output gets. */
  private String hfConfigDir;
  private Lora lora;
  private List<String> loraTargetModules;
  private ExistingOutput existing;
  private TreeMap<String, String> options;

  /** {@code --lora-r}, {@code --lora-alpha}, {@code --lora-load}; the LoRA checkpoint's tracker is read at planning. */
  public static final class Lora implements Serializable {
    private static final long serialVersionUID = 1L;
    public final int rank;
    public final double alpha;
    /** A separate LoRA-only checkpoint, or null when the factors are in the base checkpoint. */
    public final String loraDir;

    public Lora(int rank, double alpha, String loraDir) {
      if (rank <= 0) {
        throw new IllegalArgumentException("--lora-r must be positive, got " + rank);
      }
      this.rank = rank;
      this.alpha = alpha;
      this.loraDir = loraDir;
    }

    @Override
    public String toString() {
      return "r=" + rank + " alpha=" + alpha + (loraDir == null ? "" : " load=" + loraDir);
    }
  }

  private ConversionRequest(Kind kind, String loadDir, String saveDir, LayoutOptions layout,
      LayoutOptions targetLayout) {
    this.kind = Objects.requireNonNull(kind);
    this.loadDir = Objects.requireNonNull(loadDir, "loadDir");
    this.saveDir = Objects.requireNonNull(saveDir, "saveDir");
    this.layout = layout == null ? LayoutOptions.defaults() : layout;
    this.targetLayout = targetLayout;
    this.existing = ExistingOutput.REFUSE;
    this.options = new TreeMap<>();
  }

  /** A copy to change one field of (the with… methods). */
  private ConversionRequest copy() {
    ConversionRequest c = new ConversionRequest(kind, loadDir, saveDir, layout, targetLayout);
    c.modelConfig = modelConfig;
    c.hfConfigDir = hfConfigDir;
    c.lora = lora;
    c.loraTargetModules = loraTargetModules;
    c.existing = existing;
    c.options = options;
    return c;
  }

  /** HF → mcore with {@code layout} (its {@code tp/pp/ep} are the target's). */
  public static ConversionRequest hf2mcore(String loadDir, String saveDir, LayoutOptions layout) {
    return new ConversionRequest(Kind.HF2MCORE, loadDir, saveDir, layout, null);
  }

  /** mcore → HF; {@code layout} is the one the rank files were written with. */
  public static ConversionRequest mcore2hf(String loadDir, String saveDir, LayoutOptions layout) {
    return new ConversionRequest(Kind.MCORE2HF, loadDir, saveDir, layout, null);
  }

  /** The LoRA factors of an mcore checkpoint, gathered over TP, as a PEFT adapter for {@code targetModules}. */
  public static ConversionRequest loraExport(String loadDir, String saveDir, LayoutOptions layout, Lora lora,
      List<String> targetModules) {
    if (lora == null || targetModules == null || targetModules.isEmpty()) {
      throw new IllegalArgumentException("--save-lora-to-hf needs --lora-r, --lora-alpha and --lora-target-modules");
    }
    ConversionRequest r = new ConversionRequest(Kind.LORA_EXPORT, loadDir, saveDir, layout, null);
    r.lora = lora;
    r.loraTargetModules = List.copyOf(targetModules);
    return r;
  }

  /**
   * mcore → mcore: the rank files of {@code from} (the layout they were written with) rewritten in layout {@code to},
   * in one pass. {@code --mtp-num-layers} and {@code --first-k-dense-replace} must agree between the two.
   */
  public static ConversionRequest mcore2mcore(String loadDir, String saveDir, LayoutOptions from, LayoutOptions to) {
    return new ConversionRequest(Kind.MCORE2MCORE, loadDir, saveDir, from, Objects.requireNonNull(to));
  }

  /** DeepSeek's FP8 release → bf16 safetensors. */
  public static ConversionRequest fp8ToBf16(String loadDir, String saveDir) {
    return new ConversionRequest(Kind.FP8_TO_BF16, loadDir, saveDir, null, null);
  }

  /** The same conversion between other folders (watch: one request per checkpoint that lands). */
  public ConversionRequest withDirs(String load, String save) {
    ConversionRequest c = copy();
    c.loadDir = Objects.requireNonNull(load, "loadDir");
    c.saveDir = Objects.requireNonNull(save, "saveDir");
    return c;
  }

  /** The same conversion with another input layout (mcore input: a DeepSeek-V4 checkpoint's own args). */
  public ConversionRequest withLayout(LayoutOptions l) {
    ConversionRequest c = copy();
    c.layout = l == null ? LayoutOptions.defaults() : l;
    return c;
  }

  /** The HF {@code config.json} with the model dimensions (mcore input); default: the one in the load dir. */
  public ConversionRequest withModelConfig(String path) {
    ConversionRequest c = copy();
    c.modelConfig = path;
    return c;
  }

  /**
   * HF output: the folder whose {@code config.json} gives the model dimensions (unless {@link #withModelConfig}
   * names another) and whose config and tokenizer files the output gets, instead of the load dir's (MindSpeed's
   * {@code --hf-cfg-dir}).
   */
  public ConversionRequest withHfConfigDir(String dir) {
    if (dir != null && kind != Kind.MCORE2HF) {
      throw new IllegalArgumentException("--hf-cfg-dir names the HF folder whose config and tokenizer files an HF "
          + "output gets (mcore2hf); " + kind.command + (kind == Kind.LORA_EXPORT ? " --save-lora-to-hf" : "")
          + " does not take it");
    }
    ConversionRequest c = copy();
    // one spelling per folder: gs://b/hf and gs://b/hf/ are the same conversion (fingerprint, save-dir check)
    c.hfConfigDir = dir == null ? null : withoutTrailingSlash(dir);
    return c;
  }

  /** Merge LoRA factors into the base as it is read (mcore input). */
  public ConversionRequest withLora(Lora l) {
    if (kind == Kind.HF2MCORE || kind == Kind.FP8_TO_BF16) {
      throw new IllegalArgumentException("LoRA weights are merged from mcore checkpoints only");
    }
    ConversionRequest c = copy();
    c.lora = l;
    return c;
  }

  public ConversionRequest withExistingOutput(ExistingOutput e) {
    ConversionRequest c = copy();
    c.existing = Objects.requireNonNull(e);
    return c;
  }

  /** The provenance to record (flag → value, as the user gave them). */
  public ConversionRequest withOptions(Map<String, String> o) {
    ConversionRequest c = copy();
    c.options = new TreeMap<>(o);
    return c;
  }

  public Kind kind() {
    return kind;
  }

  public String loadDir() {
    return loadDir;
  }

  /** {@code dir} without a trailing slash (a lone "/" stays): the one spelling of a folder, local or gs://. */
  static String withoutTrailingSlash(String dir) {
    return dir.replaceAll("(?<=[^/])/+$", "");
  }

  public String saveDir() {
    return saveDir;
  }

  /** The layout: the output's for hf2mcore, the input's for conversions that read mcore rank files. */
  public LayoutOptions layout() {
    return layout;
  }

  /** The output's layout (mcore → mcore), or null. */
  public LayoutOptions targetLayout() {
    return targetLayout;
  }

  public String modelConfig() {
    return modelConfig;
  }

  /** MindSpeed's {@code --hf-cfg-dir} (mcore → HF), or null: the load dir's files are used. */
  public String hfConfigDir() {
    return hfConfigDir;
  }

  /** The HF {@code config.json} the model's dimensions are read from (mcore input). */
  public String modelConfigPath() {
    if (modelConfig != null) {
      return modelConfig;
    }
    return CheckpointFiles.resolve(hfConfigDir != null ? hfConfigDir : loadDir, "config.json");
  }

  public Lora lora() {
    return lora;
  }

  public List<String> loraTargetModules() {
    return loraTargetModules;
  }

  public ExistingOutput existingOutput() {
    return existing;
  }

  public Map<String, String> options() {
    return new TreeMap<>(options);
  }

  /**
   * What identifies the conversion besides its input: every typed field. Two requests with the same description
   * write the same bytes from the same input.
   */
  public String describe() {
    return kind + "\n" + layout + (targetLayout == null ? "" : "\nto " + targetLayout) + "\nmodel-config="
        + modelConfig + (hfConfigDir == null ? "" : "\nhf-cfg-dir=" + hfConfigDir) + "\nlora=" + lora
        + "\nlora-target-modules=" + loraTargetModules + "\n";
  }

  /**
   * Equal requests are the same conversion between the same folders: the typed fields, not the flags' spelling
   * ({@link #options()} is provenance). Defaults a request leaves to the model's config are compared as given here;
   * {@code ConversionPlanner}'s fingerprint compares them resolved.
   */
  @Override
  public boolean equals(Object o) {
    if (!(o instanceof ConversionRequest)) {
      return false;
    }
    ConversionRequest r = (ConversionRequest) o;
    return loadDir.equals(r.loadDir) && saveDir.equals(r.saveDir) && existing == r.existing
        && describe().equals(r.describe());
  }

  @Override
  public int hashCode() {
    return Objects.hash(loadDir, saveDir, describe());
  }

  @Override
  public String toString() {
    return kind.command + " " + loadDir + " -> " + saveDir;
  }
}
