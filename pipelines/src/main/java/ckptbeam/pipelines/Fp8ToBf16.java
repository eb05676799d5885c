package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.PythonJson;
import ckptbeam.io.SafetensorsIndex;
import ckptbeam.transforms.Fp8ToBf16Plan;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.DequantizeFp8;
import ckptbeam.transforms.beam.LocateSources;
import ckptbeam.transforms.beam.ReadSafetensorsHeaders;
import ckptbeam.transforms.beam.RequestSources;
import ckptbeam.transforms.beam.ShardRef;
import ckptbeam.transforms.beam.WriteTargets;
import ckptbeam.transforms.beam.WrittenFile;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.values.PCollectionTuple;

/** {@code ckptbeam fp8-to-bf16}: the CPU replacement of DeepSeek's {@code fp8_cast_bf16.py}. */
final class Fp8ToBf16 {
  private Fp8ToBf16() {}

  static List<WrittenFile> run(String[] argv, PrintStream log) throws Exception {
    Args a = new Args().value("load-dir").value("save-dir").flag("overwrite").parse(argv);
    String loadDir = Cli.absolute(a.require("load-dir"));
    String saveDir = Cli.absolute(a.require("save-dir"));
    PipelineOptions options = Cli.pipelineOptions(a.beamArgs(), "fp8-to-bf16");
    org.apache.beam.sdk.io.FileSystems.setDefaultPipelineOptions(options);
    long start = System.nanoTime();
    if (!CheckpointFiles.isDirectory(loadDir)) {
      throw new IOException("--load-dir " + loadDir + ": no such directory");
    }
    String configPath = CheckpointFiles.resolve(loadDir, "config.json");
    ModelConfig cfg = Cli.readConfig(configPath);
    if (!cfg.fp8) {
      throw new IOException(configPath + " declares no quantization_config: the checkpoint is not FP8");
    }
    SafetensorsIndex index = SafetensorsIndex.read(loadDir);
    Fp8ToBf16Plan plan = new Fp8ToBf16Plan(index);
    Map<String, List<String>> byShard = new TreeMap<>();
    index.weightMap().forEach((name, shard) -> byShard.computeIfAbsent(shard, s -> new ArrayList<>()).add(name));
    List<ShardRef> shards = new ArrayList<>();
    for (Map.Entry<String, List<String>> e : byShard.entrySet()) {
      String path = CheckpointFiles.resolve(loadDir, e.getKey());
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": the index names this shard (for \"" + e.getValue().get(0)
            + "\") but it does not exist");
      }
      shards.add(new ShardRef(path, e.getValue()));
    }
    Cli.prepareSaveDir(saveDir, a.has("overwrite"), SafetensorsIndex.FILE_NAME);
    ObjectNode config = (ObjectNode) new ObjectMapper().readTree(CheckpointFiles.readSmallFile(configPath, 16L << 20));
    config.remove("quantization_config");
    Map<String, String> sideFiles = new LinkedHashMap<>();
    for (String name : Hf2Mcore.SIDE_FILES) {
      String path = CheckpointFiles.resolve(loadDir, name);
      if (!name.equals("config.json") && CheckpointFiles.exists(path)) {
        sideFiles.put(path, name);
      }
    }

    Pipeline p = Pipeline.create(options);
    PCollectionTuple joined = PCollectionTuple
        .of(LocateSources.LOCATIONS.getId(), p.apply("Shards", Create.of(shards).withCoder(ShardRef.Coder.of()))
            .apply("ReadHeaders", ReadSafetensorsHeaders.create())
            .apply("DequantizeFp8", DequantizeFp8.withBlocks(cfg.fp8BlockRows, cfg.fp8BlockCols)))
        .and(LocateSources.REQUESTS.getId(), p.apply("RequestSources", RequestSources.of(plan)));
    joined.apply("LocateSources", LocateSources.create())
        .apply("WriteShards", WriteTargets.of(plan, saveDir))
        .apply("Commit", new CommitCheckpoint(saveDir, plan.targets(), sideFiles,
            Map.of("config.json", PythonJson.write(config, 2)), SafetensorsIndex.FILE_NAME,
            written -> plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum())));
    Cli.run(p);
    List<String> written = new ArrayList<>(plan.targets());
    written.add(SafetensorsIndex.FILE_NAME);
    return Cli.report(log, saveDir, written, System.nanoTime() - start);
  }
}
