package ckptbeam.transforms;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.Test;

class ModelConfigTest {
  private static String error(String json) {
    return assertThrows(IOException.class,
        () -> ModelConfig.parse("/x/config.json", json.getBytes(StandardCharsets.UTF_8))).getMessage();
  }

  /** The config is refused with a message that says {@code part}; the failure shows the whole message. */
  private static void assertError(String json, String part) {
    String message = error(json);
    assertTrue(message.contains(part), message);
  }

  @Test
  void readsTheDeepSeekV3Config() {
    ModelConfig c = Configs.deepseekV3();
    assertEquals(7168, c.hiddenSize);
    assertEquals(2112, c.qkvRows());
    assertEquals(192, c.qHeadDim());
    assertEquals(256, c.kvHeadDim());
    assertEquals(2048, c.sharedIntermediateSize());
    assertFalse(c.fp8);
  }

  @Test
  void everyMissingFieldIsNamed() {
    for (String field : new String[] {"hidden_size", "vocab_size", "intermediate_size", "moe_intermediate_size",
        "n_routed_experts", "n_shared_experts", "num_attention_heads", "q_lora_rank", "kv_lora_rank",
        "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", "num_hidden_layers", "first_k_dense_replace",
        "num_nextn_predict_layers"}) {
      String json = Configs.DEEPSEEK_V3.replaceAll("\"" + field + "\":\\d+,?", "").replace(",}", "}");
      assertEquals("/x/config.json: field \"" + field + "\" is missing", error(json), field);
    }
  }

  @Test
  void badValuesAreNamed() {
    assertError(Configs.DEEPSEEK_V3.replace("\"hidden_size\":7168", "\"hidden_size\":\"big\""), "field \"hidden_size\" is \"big\"");
    assertError(Configs.DEEPSEEK_V3.replace("\"hidden_size\":7168", "\"hidden_size\":0"), "field \"hidden_size\" is 0");
    assertError(Configs.DEEPSEEK_V3.replace("\"q_lora_rank\":1536", "\"q_lora_rank\":null"), "MLA without q-LoRA is not supported");
    assertError(Configs.DEEPSEEK_V3.replace("\"moe_layer_freq\":1", "\"moe_layer_freq\":2"), "moe_layer_freq");
    assertTrue(error("{\"hidden_size\":").startsWith("/x/config.json: not valid JSON"));
    assertError("[]", "not a JSON object");
  }

  @Test
  void detectsFp8Checkpoints() {
    ModelConfig c = Configs.parse(Configs.DEEPSEEK_V3.replace("}", ",\"quantization_config\":{\"fmt\":\"e4m3\"}}"));
    assertTrue(c.fp8);
    assertTrue(Configs.parse(Configs.DEEPSEEK_V3.replace("}", ",\"quantization_config\":{\"fmt\":\"e4m3\","
        + "\"scale_fmt\":\"ue8m0\"}}")).fp8, "V3.1's power-of-two scales");
    assertTrue(Configs.parse(Configs.DEEPSEEK_V3.replace("}", ",\"quantization_config\":{\"quant_method\":\"fp8\","
        + "\"scale_fmt\":null}}")).fp8);
  }

  @Test
  void unknownQuantisationFormatsAreRefusedByField() {
    assertError(Configs.DEEPSEEK_V3.replace("}", ",\"quantization_config\":{\"fmt\":\"e5m2\"}}"),
        "field \"quantization_config.fmt\" is \"e5m2\"; only \"e4m3\"");
    assertError(Configs.DEEPSEEK_V3.replace("}", ",\"quantization_config\":{\"fmt\":\"e4m3\",\"scale_fmt\":\"e4m3\"}}"),
        "field \"quantization_config.scale_fmt\" is \"e4m3\"; only \"ue8m0\"");
  }
}
