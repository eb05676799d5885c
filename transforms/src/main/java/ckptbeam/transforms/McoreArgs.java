package ckptbeam.transforms;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.stream.Collectors;

/**
 * The {@code args} Namespace of a DeepSeek-V4 rank file (docs/mapping.md §11.7): what MindSpeed's V4 mcore → HF and
 * Megatron's checkpoint-args check read back, in the order MindSpeed builds it (config.json's fields first, then
 * what the model type and the layout set). Paths are left out: the bytes depend on the conversion, not on where it
 * ran.
 */
final class McoreArgs {
  private McoreArgs() {}

  static Map<String, Object> v4(ModelConfig c, LayoutOptions o) {
    Map<String, Object> a = new LinkedHashMap<>();
    // MindSpeed's config reader holds the model type and direction before config.json's fields (its hf_path, a
    // path, is left out)
    a.put("model_type_hf", o.v4Base() ? "deepseek4_base" : "deepseek4");
    a.put("load_model_type", "hf");
    a.putAll(c.scalarFields());
    List<Object> ratios = new ArrayList<>();
    for (int r : c.compressRatios()) {
      ratios.add((long) r);
    }
    a.put("compress_ratios", ratios); // after dropping a -0731 config's reserved zeros
    a.put("qk_head_dim", c.headDim);
    a.put("num_layers", (long) o.numLayers()); // with the noop slots: what the trainer's --num-layers must equal
    a.put("num_experts", c.routedExperts);
    a.put("n_hash_layers", (long) c.hashLayers);
    a.put("first_k_dense_replace", 0L);
    a.put("untie_embeddings_and_output_weights", true);
    if (!o.v4Base()) {
      a.put("tie_mtp_embeddings_and_lmhead", "true"); // MindSpeed tests for its presence, a string
    }
    a.put("qkv_type", "pack_mla");
    a.put("multi_latent_attention", true);
    a.put("qk_layernorm", true);
    a.put("router_bias", true);
    a.put("enable_dsa_indexer", true);
    a.put("tensor_model_parallel_size", (long) o.tp());
    a.put("pipeline_model_parallel_size", (long) o.pp());
    a.put("expert_model_parallel_size", (long) o.ep());
    a.put("expert_tensor_parallel_size", (long) Math.max(1, o.expertTensorParallel()));
    // the converter's own attributes, which only a trainer started with --use-checkpoint-args reads
    a.put("ep_size", (long) o.ep());
    a.put("expert_tp_size", (long) Math.max(1, o.expertTensorParallel()));
    if (o.numLayerList() != null) {
      a.put("num_layer_list", join(o.numLayerList()));
    }
    if (o.layersPerVirtualStage() > 0) {
      a.put("num_layers_per_virtual_pipeline_stage", (long) o.layersPerVirtualStage());
      a.put("vpp_size", (long) o.virtualChunks());
    }
    if (!o.noopLayers().isEmpty()) {
      a.put("noop_layers", o.noopLayers().stream().map(String::valueOf).collect(Collectors.joining(",")));
    }
    a.put("mtp_num_layers", (long) o.mtpLayers());
    a.put("moe_grouped_gemm", o.groupedGemm());
    a.put("moe_tp_extend_ep", false);
    a.put("mla_mm_split", o.mlaMmSplit()); // accepted without effect on V4's tensors, recorded as MindSpeed does
    a.put("dualpipe", false);
    a.put("save_layer_by_layer", true);
    return a;
  }

  private static String join(int[] v) {
    return java.util.Arrays.stream(v).mapToObj(String::valueOf).collect(Collectors.joining(","));
  }
}
