package ckptbeam.transforms;

import ckptbeam.io.safetensors.PythonJson;
import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.io.storage.CheckpointFiles;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.util.List;
import java.util.Map;

/** fp8-to-bf16: file for file, the index decides the targets; config.json loses its quantization_config. */
final class Fp8ToBf16Planner implements KindPlanner {
  @Override
  public CheckedConversion plan(ConversionRequest r, boolean validate) throws IOException {
    String configPath = CheckpointFiles.resolve(r.loadDir(), "config.json");
    ModelConfig cfg = ModelConfig.read(configPath);
    if (!cfg.fp8) {
      throw new IOException(configPath + " declares no quantization_config: the checkpoint is not FP8");
    }
    SafetensorsIndex index = SafetensorsIndex.read(r.loadDir());
    Fp8ToBf16Plan plan = new Fp8ToBf16Plan(index, cfg);
    List<SourceFile> shards = validate ? ConversionPlanner.shards(r.loadDir(), index) : null;
    Map<String, String> identity = ConversionPlanner.identity(r.loadDir(), SafetensorsIndex.FILE_NAME, "config.json");
    String fingerprint = ConversionPlanner.fingerprint(r, identity);
    ObjectNode config = (ObjectNode) new ObjectMapper().readTree(CheckpointFiles.readSmallFile(configPath, 16L << 20));
    config.remove("quantization_config");
    CheckpointCommit commit = new CheckpointCommit(r.saveDir(), plan.targets(), ConversionPlanner.modelFolderFiles(
        r.loadDir(), r.saveDir()), Map.of("config.json", PythonJson.write(config, 2)), SafetensorsIndex.FILE_NAME,
        new ConversionPlanner.IndexMarker(plan), ConversionPlanner.manifestHeader(r, identity, fingerprint));
    List<String> notes = validate ? ConversionPlanner.unindexedShardsNote(r.loadDir(), index) : List.of();
    return new CheckedConversion(r, plan, commit, fingerprint, notes, -1, new HfShardSources(shards, cfg));
  }
}
