package ckptbeam.it;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.ByteBuffer;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** .pt files written by real torch.save (protocols 2 and 4, dict / OrderedDict / defaultdict, training state). */
class TorchWrittenFilesTest {
  @TempDir Path dir;

  @Test
  void everyTensorReadsBackExactly() throws Exception {
    Torch.requireTorch();
    Torch.Result r = Torch.run(List.of(Torch.PYTHON,
        Torch.repo().resolve("integration-tests/src/test/python/make_torch_fixtures.py").toString(), dir.toString()));
    assertEquals(0, r.exit, r.output);
    JsonNode expected = new ObjectMapper().readTree(dir.resolve("expected.json").toFile());
    int checked = 0;
    for (Iterator<Map.Entry<String, JsonNode>> files = expected.fields(); files.hasNext(); ) {
      Map.Entry<String, JsonNode> file = files.next();
      String path = dir.resolve(file.getKey()).toString();
      TorchCheckpointReader reader = TorchCheckpointReader.open(path);
      Map<String, PickleReader.TorchTensor> tensors = reader.tensors(file.getValue().get("entry").asText());
      JsonNode want = file.getValue().get("tensors");
      assertEquals(want.size(), tensors.size(), file.getKey() + ": " + tensors.keySet());
      for (Iterator<Map.Entry<String, JsonNode>> it = want.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> t = it.next();
        PickleReader.TorchTensor found = tensors.get(t.getKey());
        TensorLocation loc = reader.locate(t.getKey(), found);
        assertEquals(t.getValue().get("dtype").asText(), loc.dtype().torchName(), t.getKey());
        assertEquals(t.getValue().get("shape").toString(), Arrays.toString(loc.shape().dims()).replace(" ", ""));
        byte[] bytes = new byte[(int) loc.byteSize()];
        try (RangeReader in = CheckpointFiles.open(path)) {
          in.readFully(loc.offset(), ByteBuffer.wrap(bytes));
        }
        assertEquals(t.getValue().get("hex").asText(), HexFormat.of().formatHex(bytes), file.getKey() + " " + t.getKey());
        checked++;
      }
      Object root = reader.root();
      if (file.getKey().startsWith("p2_dict_with_training_state")) {
        Map<?, ?> m = (Map<?, ?>) root;
        assertEquals(7L, m.get("iteration"));
        assertTrue(m.get("args") instanceof PickleReader.PyObject, "args is an inert placeholder");
        assertTrue(m.get("optimizer") instanceof Map);
      }
    }
    assertTrue(checked >= 20, "checked " + checked);
  }
}
