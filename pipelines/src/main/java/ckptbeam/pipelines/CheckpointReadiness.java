package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.torch.McoreTracker;
import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.Mcore2HfPlan;
import ckptbeam.transforms.McoreInputConfig;
import ckptbeam.transforms.ModelConfig;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Iterator;
import java.util.List;
import java.util.Map;

/**
 * When a checkpoint folder that is still being written can be converted. HF: {@code config.json} and the index exist,
 * and every shard the index names is present with the size its header implies. Megatron-core: the tracker file, the
 * config (or, for DeepSeek-V4, the first rank file whose args it is rebuilt from) and every rank file of the tracked
 * iteration (for the layout given) exist, each rank file ending with its zip directory. A folder that is complete but
 * malformed counts as ready: its conversion then fails with the reader's message, and that failure is reported,
 * instead of waiting for a fix forever.
 */
final class CheckpointReadiness implements Serializable {
  private static final long serialVersionUID = 1L;
  private static final ObjectMapper JSON = new ObjectMapper();
  /** End of central directory record of a zip without comment (what torch.save writes): 22 bytes, PK\5\6. */
  private static final int EOCD_BYTES = 22;

  private final ConversionDirection direction;
  private final String[] conversionArgs;
  /** The watch's request, whose paths the driver made absolute; null: built from the flags here. */
  private final ConversionRequest template;

  CheckpointReadiness(ConversionDirection direction, String[] conversionArgs) {
    this(direction, conversionArgs, null);
  }

  CheckpointReadiness(ConversionDirection direction, String[] conversionArgs, ConversionRequest template) {
    this.direction = direction;
    this.conversionArgs = conversionArgs.clone();
    this.template = template;
  }

  /** The file whose appearance makes a folder a candidate (and whose absence means: not a checkpoint yet). */
  String markerFile() {
    return direction == ConversionDirection.HF2MCORE ? SafetensorsIndex.FILE_NAME : McoreTracker.FILE_NAME;
  }

  /** Null when {@code folder} is complete; else what is still missing. */
  String missing(String folder) throws IOException {
    return direction == ConversionDirection.HF2MCORE ? missingHf(folder) : missingMcore(folder);
  }

  private String missingHf(String folder) throws IOException {
    if (!CheckpointFiles.exists(CheckpointFiles.resolve(folder, "config.json"))) {
      return "config.json";
    }
    String indexPath = CheckpointFiles.resolve(folder, SafetensorsIndex.FILE_NAME);
    if (!CheckpointFiles.exists(indexPath)) {
      return SafetensorsIndex.FILE_NAME;
    }
    SafetensorsIndex index;
    try {
      index = SafetensorsIndex.read(folder);
    } catch (IOException e) {
      return SafetensorsIndex.FILE_NAME + " (not complete JSON yet)";
    }
    return firstIncomplete(folder, index.shards(), (path, size) -> {
      long implied = impliedSize(path, size);
      return implied > size ? size + " of " + implied + " bytes" : null;
    });
  }

  /** What a present file still lacks, given its size; null when it is complete. */
  private interface Completeness {
    String lacking(String path, long size) throws IOException;
  }

  /** The first of {@code files} that is missing or incomplete (a read error: it is changing), or null. */
  private static String firstIncomplete(String folder, List<String> files, Completeness check)
      throws IOException {
    for (String file : files) {
      String path = CheckpointFiles.resolve(folder, file);
      long size = CheckpointFiles.sizeOrMissing(path);
      if (size < 0) {
        return file;
      }
      String lacking;
      try {
        lacking = check.lacking(path, size);
      } catch (IOException e) {
        lacking = "changing while read: " + e.getMessage();
      }
      if (lacking != null) {
        return file + " (" + lacking + ")";
      }
    }
    return null;
  }

  /**
   * The size a safetensors file's header implies (8 + header + the furthest data offset), or {@code size} itself
   * when the header cannot tell (malformed: ready, the conversion reports it).
   */
  static long impliedSize(String path, long size) throws IOException {
    if (size < 8) {
      return 8;
    }
    try (RangeReader r = CheckpointFiles.open(path)) {
      ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
      r.readFully(0, len);
      long n = len.getLong(0);
      if (n < 0 || n > SafetensorsHeader.MAX_HEADER_BYTES) {
        return size;
      }
      if (8 + n > size) {
        return 8 + n;
      }
      ByteBuffer header = ByteBuffer.allocate((int) n);
      r.readFully(8, header);
      JsonNode root;
      try {
        root = JSON.readTree(header.array());
      } catch (IOException e) {
        return size;
      }
      long end = 0;
      for (Iterator<Map.Entry<String, JsonNode>> it = root.fields(); it.hasNext(); ) {
        Map.Entry<String, JsonNode> e = it.next();
        JsonNode offsets = e.getValue().get("data_offsets");
        if (!e.getKey().equals("__metadata__") && offsets != null && offsets.size() == 2) {
          end = Math.max(end, offsets.get(1).asLong());
        }
      }
      return 8 + n + end;
    }
  }

  private String missingMcore(String folder) throws IOException {
    if (!CheckpointFiles.exists(CheckpointFiles.resolve(folder, McoreTracker.FILE_NAME))) {
      return McoreTracker.FILE_NAME;
    }
    Args a = Mcore2Hf.flags().parse(conversionArgs);
    // the template's paths, made absolute where the command ran (a relative one would resolve otherwise here)
    ConversionRequest r = template != null ? template.withDirs(folder, folder) : Mcore2Hf.request(a, folder, folder);
    String config = r.modelConfigPath();
    boolean named = r.modelConfig() != null || r.hfConfigDir() != null;
    if (named && !CheckpointFiles.exists(config)) {
      return config;
    }
    Mcore2HfPlan plan;
    try {
      String iterationDir = McoreTracker.iterationDir(folder);
      // a DeepSeek-V4 checkpoint's layout (and, without config.json, its model) is in its first rank file's args:
      // that file must be whole to be read
      String first = McoreInputConfig.firstRankFile(folder);
      ModelConfig cfg = CheckpointFiles.exists(config) ? McoreInputConfig.of(r).parse() : null;
      boolean v4 = cfg != null ? cfg.v4() : first != null;
      if (v4 && first == null) {
        return iterationDir + "/mp_rank_00…/model_optim_rng.pt (its args give the layout)";
      }
      if (v4) {
        String lacking = firstIncomplete(folder, List.of(first), CheckpointReadiness::zipDirectoryLacking);
        if (lacking != null) {
          return lacking;
        }
      }
      if (cfg == null) {
        McoreInputConfig rebuilt;
        try {
          rebuilt = McoreInputConfig.of(r);
        } catch (IOException e) {
          // no config.json yet, and no DeepSeek-V4 args to rebuild it from: it may still be on its way
          return "config.json";
        }
        cfg = rebuilt.parse();
      }
      if (cfg.v4()) {
        r = CheckpointArgs.complete(a, r, first);
      }
      plan = new Mcore2HfPlan(Mcore2HfPlan.forwardPlan(cfg, r.layout()), iterationDir);
    } catch (IOException | RuntimeException e) {
      return null; // complete but unusable: the conversion says why
    }
    return firstIncomplete(folder, plan.rankFiles(), CheckpointReadiness::zipDirectoryLacking);
  }

  private static String zipDirectoryLacking(String path, long size) throws IOException {
    return endsWithZipDirectory(path, size) ? null : "no zip directory at its end yet";
  }

  private static boolean endsWithZipDirectory(String path, long size) throws IOException {
    if (size < EOCD_BYTES) {
      return false;
    }
    try (RangeReader r = CheckpointFiles.open(path)) {
      ByteBuffer tail = ByteBuffer.allocate(EOCD_BYTES);
      r.readFully(size - EOCD_BYTES, tail);
      return tail.get(0) == 'P' && tail.get(1) == 'K' && tail.get(2) == 5 && tail.get(3) == 6;
    }
  }
}
