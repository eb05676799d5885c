package ckptbeam.transforms;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.compute.Nf4;
import ckptbeam.io.compute.Nf4Dequant;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.io.torch.PickleReader;
import ckptbeam.io.torch.TorchCheckpointReader;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.util.List;
import java.util.Map;

/** Recognises NF4 entries in a rank file (docs/mapping.md §7.6) and turns them into a dequantising source (§7.7). */
final class Nf4Entries {
  static final String STATE = ".quant_state.bitsandbytes__nf4";
  private static final ObjectMapper JSON = new ObjectMapper();

  private Nf4Entries() {}

  static List<String> siblings(String key) {
    return List.of(key + ".absmax", key + ".quant_map", key + ".nested_absmax", key + ".nested_quant_map", key + STATE);
  }

  static boolean isNf4(Map<String, PickleReader.TorchTensor> present, String key) {
    PickleReader.TorchTensor t = present.get(key);
    return t != null && t.dtype == DType.U8 && present.containsKey(key + STATE);
  }

  static TensorLocation dequantised(TorchCheckpointReader reader, Map<String, PickleReader.TorchTensor> present,
      String key, String name) throws IOException {
    TensorLocation stateLoc = reader.locate(key + STATE, present.get(key + STATE));
    if (stateLoc.byteSize() > 1 << 16) {
      throw new CheckpointFormatException(reader.file(), "Nf4", "\"" + key + STATE + "\" is too large");
    }
    ByteBuffer b = ByteBuffer.allocate((int) stateLoc.byteSize());
    try (RangeReader in = CheckpointFiles.open(stateLoc.file())) {
      in.readFully(stateLoc.offset(), b);
    }
    JsonNode state;
    try {
      state = JSON.readTree(b.array());
    } catch (IOException e) {
      throw new CheckpointFormatException(reader.file(), "Nf4", "\"" + key + STATE + "\" is not JSON");
    }
    if (state == null || !"nf4".equals(state.path("quant_type").asText()) || state.path("blocksize").asInt() != 64
        || !state.path("shape").isArray()) {
      throw new CheckpointFormatException(reader.file(), "Nf4", "\"" + key + STATE + "\" is not an NF4 state with "
          + "blocksize 64: " + state);
    }
    long[] dims = new long[state.path("shape").size()];
    for (int i = 0; i < dims.length; i++) {
      dims[i] = state.path("shape").get(i).asLong();
    }
    DType dtype = DType.fromTorchName(state.path("dtype").asText());
    PickleReader.TorchTensor packed = present.get(key);
    PickleReader.TorchTensor absmax = present.get(key + ".absmax");
    PickleReader.TorchTensor nested = present.get(key + ".nested_absmax");
    if (absmax == null || dtype == null) {
      throw new CheckpointFormatException(reader.file(), "Nf4", "\"" + key + "\" has an NF4 state but no absmax or "
          + "an unknown dtype " + state.path("dtype"));
    }
    Nf4.Format format = packed.size.length == 1 ? Nf4.Format.NPU : Nf4.Format.BITSANDBYTES;
    try {
      return new Nf4Dequant(format, reader.locate(key, packed), reader.locate(key + ".absmax", absmax),
          nested == null ? null : reader.locate(key + ".nested_absmax", nested),
          (float) state.path("nested_offset").asDouble(0)).as(name, dtype, Shape.of(dims));
    } catch (IllegalArgumentException | ArithmeticException e) {
      throw new CheckpointFormatException(reader.file(), "Nf4", "\"" + key + "\": " + e.getMessage());
    }
  }
}
