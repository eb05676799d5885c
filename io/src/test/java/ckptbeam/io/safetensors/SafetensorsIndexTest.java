package ckptbeam.io.safetensors;

import ckptbeam.io.CheckpointFormatException;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

class SafetensorsIndexTest {
  private static SafetensorsIndex parse(String json) throws CheckpointFormatException {
    return SafetensorsIndex.parse("idx.json", json.getBytes(StandardCharsets.UTF_8));
  }

  @Test
  void readsWeightMapAndTotalSize() throws Exception {
    SafetensorsIndex i = parse("{\"metadata\":{\"total_size\":12},\"weight_map\":{\"b\":\"s2.safetensors\","
        + "\"a\":\"s1.safetensors\",\"c\":\"sub/s1.safetensors\"}}");
    assertEquals(12L, i.totalSize());
    assertEquals(List.of("b", "a", "c"), List.copyOf(i.weightMap().keySet()));
    assertEquals(List.of("s1.safetensors", "s2.safetensors", "sub/s1.safetensors"), i.shards());
  }

  @ParameterizedTest
  @ValueSource(strings = {"../x.safetensors", "/etc/passwd", "a/../../b", "gs://other/x", "a\\\\b", "", "./x", "a//b"})
  void refusesShardNamesThatEscapeTheFolder(String shard) {
    CheckpointFormatException e = assertThrows(CheckpointFormatException.class,
        () -> parse("{\"weight_map\":{\"t\":\"" + shard + "\"}}"));
    assertEquals("UnsafeShardName", e.rule());
    assertTrue(e.getMessage().contains("\"t\""), e.getMessage());
  }

  @Test
  void refusesMalformedIndexes() {
    for (String json : List.of("{", "[]", "{\"weight_map\":[]}", "{\"weight_map\":{\"t\":3}}", "{}",
        "{\"weight_map\":{\"t\":\"a\",\"t\":\"b\"}}")) {
      CheckpointFormatException e = assertThrows(CheckpointFormatException.class, () -> parse(json), json);
      assertEquals("InvalidIndex", e.rule(), json);
    }
  }

  @Test
  void writesPythonStyleJson() throws Exception {
    Map<String, String> m = new LinkedHashMap<>();
    m.put("x", "f1");
    m.put("y", "f2");
    String out = new String(new SafetensorsIndex(m, 42L).toJson(4), StandardCharsets.UTF_8);
    assertEquals("{\n    \"metadata\": {\n        \"total_size\": 42\n    },\n    \"weight_map\": {\n"
        + "        \"x\": \"f1\",\n        \"y\": \"f2\"\n    }\n}\n", out);
    assertEquals(m, parse(out).weightMap());
  }
}
