package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The HF {@code config.json} that describes an mcore checkpoint: the file the request names ({@code --model-config},
 * {@code --hf-cfg-dir}, else the load dir's). A DeepSeek-V4 checkpoint that MindSpeed's hf2mcore wrote has none (only
 * the tracker and the rank files), and MindSpeed's mcore2hf reads the model from the rank files' {@code args}; so,
 * when no file was named and the load dir has none, the config is rebuilt from the args of the first rank file,
 * which hold config.json's int, float, string, bool and list fields (docs/mapping.md §11.7).
 */
public final class McoreInputConfig {
  /**
   * What converters and trainers put in a V4 rank file's args besides config.json's own fields (MindSpeed's mapped
   * and set values, the layout, paths): not config.
   */
  private static final Set<String> NOT_CONFIG = Set.of("model_type_hf", "load_model_type", "hf_path",
      "hf_model_path", "load_dir", "save_dir", "iter_save_dir", "qk_head_dim", "num_layers", "num_experts",
      "n_hash_layers", "first_k_dense_replace", "untie_embeddings_and_output_weights",
      "tie_mtp_embeddings_and_lmhead", "qkv_type", "multi_latent_attention", "qk_layernorm", "router_bias",
      "enable_dsa_indexer", "tensor_model_parallel_size", "pipeline_model_parallel_size",
      "expert_model_parallel_size", "expert_tensor_parallel_size", "ep_size", "expert_tp_size", "num_layer_list",
      "num_layers_per_virtual_pipeline_stage", "vpp_size", "noop_layers", "mtp_num_layers", "moe_grouped_gemm",
      "moe_tp_extend_ep", "mla_mm_split", "dualpipe", "save_layer_by_layer", "transformer_impl", "schedules_method",
      "target_tensor_parallel_size", "target_pipeline_parallel_size", "target_expert_parallel_size");
  private static final ObjectMapper JSON = new ObjectMapper();

  /** Where the config came from: a path, or the rank file whose args it was rebuilt from. */
  public final String source;
  /** The config.json bytes (as read, or rebuilt). */
  public final byte[] json;
  /** Whether it was rebuilt from a rank file's args. */
  public final boolean fromArgs;

  private McoreInputConfig(String source, byte[] json, boolean fromArgs) {
    this.source = source;
    this.json = json;
    this.fromArgs = fromArgs;
  }

  /** The config of request {@code r}'s mcore input. */
  public static McoreInputConfig of(ConversionRequest r) throws IOException {
    if (r.hfConfigDir() != null && !CheckpointFiles.isDirectory(r.hfConfigDir())) {
      throw new IOException("--hf-cfg-dir " + r.hfConfigDir() + ": no such directory");
    }
    if (r.modelConfig() == null && r.hfConfigDir() != null && !CheckpointFiles.exists(r.modelConfigPath())) {
      throw new IOException("--hf-cfg-dir " + r.hfConfigDir() + " has no config.json (or pass --model-config FILE)");
    }
    return of(r.modelConfigPath(), r.modelConfig() != null || r.hfConfigDir() != null, r.loadDir());
  }

  /**
   * The config at {@code path}; when it does not exist and was not named by the user ({@code named} false), the one
   * rebuilt from the args of {@code loadDir}'s first rank file, if that is a DeepSeek-V4 converter's.
   */
  public static McoreInputConfig of(String path, boolean named, String loadDir) throws IOException {
    if (CheckpointFiles.exists(path)) {
      return new McoreInputConfig(path, CheckpointFiles.readSmallFile(path, 16L << 20), false);
    }
    if (!named) {
      String first = firstRankFile(loadDir);
      Map<String, Object> args = first == null ? null : args(loadDir, first);
      if (args != null && String.valueOf(args.get("model_type_hf")).startsWith("deepseek4")) {
        return new McoreInputConfig(CheckpointFiles.resolve(loadDir, first) + " (its args)", rebuild(args), true);
      }
    }
    throw new IOException(named ? path + ": no such file (the model dimensions are read from it)"
        : "no --model-config given and " + path + " does not exist (hf2mcore copies the HF config.json there; a "
            + "DeepSeek-V4 checkpoint's rank files carry it in their args; pass --model-config FILE or --hf-cfg-dir "
            + "DIR)");
  }

  public ModelConfig parse() throws IOException {
    return ModelConfig.parse(source, json);
  }

  /** A note for the user when the config was rebuilt, else null. */
  public String note() {
    return fromArgs ? "no config.json in the load dir: the model's config is rebuilt from the args of " + source
        + " (config.json's scalar and list fields; dict fields such as rope_scaling are not in args, so the output's "
        + "config.json lacks them: give --hf-cfg-dir or --model-config for the original)" : null;
  }

  /** config.json's fields among the args, in their order: MindSpeed copies them there verbatim. */
  static byte[] rebuild(Map<String, Object> args) {
    Map<String, Object> config = new LinkedHashMap<>();
    for (Map.Entry<String, Object> e : args.entrySet()) {
      Object v = e.getValue();
      boolean plain = v instanceof Number || v instanceof String || v instanceof Boolean
          || v instanceof Collection<?> c && c.stream().allMatch(x -> x instanceof Number || x instanceof String);
      if (plain && !NOT_CONFIG.contains(e.getKey())) {
        config.put(e.getKey(), v instanceof Collection<?> c ? List.copyOf(c) : v);
      }
    }
    config.putIfAbsent("model_type", "deepseek_v4");
    if (!config.containsKey("head_dim") && args.get("qk_head_dim") instanceof Number d) {
      config.put("head_dim", d); // MindSpeed maps head_dim to qk_head_dim
    }
    return PythonJson.write(JSON.valueToTree(config), 2);
  }

  /**
   * The checkpoint's first rank file by name ({@code mp_rank_00…}), whose args are read, relative to {@code loadDir};
   * null when there is none.
   */
  public static String firstRankFile(String loadDir) throws IOException {
    String iteration = McoreTracker.iterationDir(loadDir);
    List<String> files = CheckpointFiles.list(CheckpointFiles.resolve(loadDir, iteration));
    String first = files.stream().filter(f -> f.startsWith("mp_rank_00") && f.endsWith("/model_optim_rng.pt"))
        .findFirst().orElse(null);
    return first == null ? null : iteration + "/" + first;
  }

  /** The args attributes of rank file {@code first} (relative to {@code loadDir}), or null when it has none. */
  @SuppressWarnings("unchecked")
  public static Map<String, Object> args(String loadDir, String first) throws IOException {
    Object root = TorchCheckpointReader.open(CheckpointFiles.resolve(loadDir, first)).root();
    if (!(root instanceof Map) || !(((Map<String, Object>) root).get("args") instanceof PickleReader.PyObject ns)
        || !(ns.state instanceof Map)) {
      return null;
    }
    return (Map<String, Object>) ns.state;
  }
}
