package ckptbeam.transforms;

import java.io.IOException;
import java.nio.charset.StandardCharsets;

/** Config files for tests. */
final class Configs {
  private Configs() {}

  /** The real DeepSeek-V3 config.json values (docs/formats.md §4.1). */
  static final String DEEPSEEK_V3 = "{\"vocab_size\":129280,\"hidden_size\":7168,\"intermediate_size\":18432,"
      + "\"moe_intermediate_size\":2048,\"num_hidden_layers\":61,\"first_k_dense_replace\":3,\"moe_layer_freq\":1,"
      + "\"n_routed_experts\":256,\"n_shared_experts\":1,\"num_attention_heads\":128,\"q_lora_rank\":1536,"
      + "\"kv_lora_rank\":512,\"qk_nope_head_dim\":128,\"qk_rope_head_dim\":64,\"v_head_dim\":128,"
      + "\"num_nextn_predict_layers\":1}";

  static ModelConfig deepseekV3() {
    return parse(DEEPSEEK_V3);
  }

  /** DeepSeek-V3 with another layer count. */
  static ModelConfig withLayers(int layers, int firstKDense) {
    return parse(DEEPSEEK_V3.replace("\"num_hidden_layers\":61", "\"num_hidden_layers\":" + layers)
        .replace("\"first_k_dense_replace\":3", "\"first_k_dense_replace\":" + firstKDense));
  }

  static ModelConfig parse(String json) {
    try {
      return ModelConfig.parse("config.json", json.getBytes(StandardCharsets.UTF_8));
    } catch (IOException e) {
      throw new IllegalStateException(e);
    }
  }
}
