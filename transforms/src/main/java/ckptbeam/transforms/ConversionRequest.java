package ckptbeam.transforms;

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

  private final Kind kind;
  private final String loadDir;
  private final String saveDir;
  private final LayoutOptions layout;
  /** The output's layout (mcore → mcore only; {@link #layout} is then the input's). */
  private final LayoutOptions targetLayout;
  private final String modelConfig;
  private final Lora lora;
  private final List<String> loraTargetModules;
  private final ExistingOutput existing;
  private final TreeMap<String, String> options;

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

  private ConversionRequest(Kind kind, String loadDir, String saveDir, LayoutOptions layout, String modelConfig,
      Lora lora, List<String> loraTargetModules, ExistingOutput existing, Map<String, String> options) {
    this(kind, loadDir, saveDir, layout, null, modelConfig, lora, loraTargetModules, existing, options);
  }

  private ConversionRequest(Kind kind, String loadDir, String saveDir, LayoutOptions layout,
      LayoutOptions targetLayout, String modelConfig, Lora lora, List<String> loraTargetModules,
      ExistingOutput existing, Map<String, String> options) {
    this.kind = Objects.requireNonNull(kind);
    this.loadDir = Objects.requireNonNull(loadDir, "loadDir");
    this.saveDir = Objects.requireNonNull(saveDir, "saveDir");
    this.layout = layout == null ? LayoutOptions.defaults() : layout;
    this.targetLayout = targetLayout;
    this.modelConfig = modelConfig;
    this.lora = lora;
    this.loraTargetModules = loraTargetModules == null ? null : List.copyOf(loraTargetModules);
    this.existing = Objects.requireNonNull(existing);
    this.options = new TreeMap<>(options);
  }

  /** HF → mcore with {@code layout} (its {@code tp/pp/ep} are the target's). */
  public static ConversionRequest hf2mcore(String loadDir, String saveDir, LayoutOptions layout) {
    return new ConversionRequest(Kind.HF2MCORE, loadDir, saveDir, layout, null, null, null, ExistingOutput.REFUSE,
        Map.of());
  }

  /** mcore → HF; {@code layout} is the one the rank files were written with. */
  public static ConversionRequest mcore2hf(String loadDir, String saveDir, LayoutOptions layout) {
    return new ConversionRequest(Kind.MCORE2HF, loadDir, saveDir, layout, null, null, null,
        ExistingOutput.REFUSE, Map.of());
  }

  /** The LoRA factors of an mcore checkpoint, gathered over TP, as a PEFT adapter for {@code targetModules}. */
  public static ConversionRequest loraExport(String loadDir, String saveDir, LayoutOptions layout, Lora lora,
      List<String> targetModules) {
    if (lora == null || targetModules == null || targetModules.isEmpty()) {
      throw new IllegalArgumentException("--save-lora-to-hf needs --lora-r, --lora-alpha and --lora-target-modules");
    }
    return new ConversionRequest(Kind.LORA_EXPORT, loadDir, saveDir, layout, null, lora, targetModules,
        ExistingOutput.REFUSE, Map.of());
  }

  /**
   * mcore → mcore: the rank files of {@code from} (the layout they were written with) rewritten in layout {@code to},
   * in one pass. {@code --mtp-num-layers} and {@code --first-k-dense-replace} must agree between the two.
   */
  public static ConversionRequest mcore2mcore(String loadDir, String saveDir, LayoutOptions from, LayoutOptions to) {
    return new ConversionRequest(Kind.MCORE2MCORE, loadDir, saveDir, from, Objects.requireNonNull(to),
        null, null, null, ExistingOutput.REFUSE, Map.of());
  }

  /** DeepSeek's FP8 release → bf16 safetensors. */
  public static ConversionRequest fp8ToBf16(String loadDir, String saveDir) {
    return new ConversionRequest(Kind.FP8_TO_BF16, loadDir, saveDir, null, null, null, null, ExistingOutput.REFUSE,
        Map.of());
  }

  /** The same conversion between other folders (watch: one request per checkpoint that lands). */
  public ConversionRequest withDirs(String load, String save) {
    return new ConversionRequest(kind, load, save, layout, targetLayout, modelConfig, lora, loraTargetModules,
        existing, options);
  }

  /** The same conversion with another input layout (mcore input: a DeepSeek-V4 checkpoint's own args). */
  public ConversionRequest withLayout(LayoutOptions l) {
    return new ConversionRequest(kind, loadDir, saveDir, l, targetLayout, modelConfig, lora, loraTargetModules,
        existing, options);
  }

  /** The HF {@code config.json} with the model dimensions (mcore input); default: the one in the load dir. */
  public ConversionRequest withModelConfig(String path) {
    return new ConversionRequest(kind, loadDir, saveDir, layout, targetLayout, path, lora, loraTargetModules,
        existing, options);
  }

  /** Merge LoRA factors into the base as it is read (mcore input). */
  public ConversionRequest withLora(Lora l) {
    if (kind == Kind.HF2MCORE || kind == Kind.FP8_TO_BF16) {
      throw new IllegalArgumentException("LoRA weights are merged from mcore checkpoints only");
    }
    return new ConversionRequest(kind, loadDir, saveDir, layout, targetLayout, modelConfig, l, loraTargetModules,
        existing, options);
  }

  public ConversionRequest withExistingOutput(ExistingOutput e) {
    return new ConversionRequest(kind, loadDir, saveDir, layout, targetLayout, modelConfig, lora, loraTargetModules,
        e, options);
  }

  /** The provenance to record (flag → value, as the user gave them). */
  public ConversionRequest withOptions(Map<String, String> o) {
    return new ConversionRequest(kind, loadDir, saveDir, layout, targetLayout, modelConfig, lora, loraTargetModules,
        existing, o);
  }

  public Kind kind() {
    return kind;
  }

  public String loadDir() {
    return loadDir;
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
        + modelConfig + "\nlora=" + lora + "\nlora-target-modules=" + loraTargetModules + "\n";
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
