package ckptbeam.pipelines;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.PythonJson;
import ckptbeam.io.SafetensorsIndex;
import ckptbeam.transforms.Fp8ToBf16Plan;
import ckptbeam.transforms.ModelConfig;
import ckptbeam.transforms.beam.CommitCheckpoint;
import ckptbeam.transforms.beam.DequantizeFp8;
import ckptbeam.transforms.beam.ReadSafetensorsHeaders;
import ckptbeam.transforms.beam.ShardRef;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;

/** {@code ckptbeam fp8-to-bf16}: the CPU replacement of DeepSeek's {@code fp8_cast_bf16.py}. */
final class Fp8ToBf16 {
  private Fp8ToBf16() {}

  static long run(String[] argv, PrintStream log) throws Exception {
    Args a = new Args().value("load-dir").value("save-dir").flag("overwrite").flag("resume").parse(argv);
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
    List<ShardRef> shards = Conversion.shardRefs(loadDir, index);
    Conversion conv = new Conversion("fp8-to-bf16", a, loadDir, saveDir)
        .identify(SafetensorsIndex.FILE_NAME, CheckpointFiles.resolve(loadDir, SafetensorsIndex.FILE_NAME))
        .identify("config.json", configPath);
    conv.prepareSaveDir(SafetensorsIndex.FILE_NAME);
    ObjectNode config = (ObjectNode) new ObjectMapper().readTree(CheckpointFiles.readSmallFile(configPath, 16L << 20));
    config.remove("quantization_config");

    Pipeline p = Pipeline.create(options);
    conv.write(p, p.apply("Shards", Create.of(shards).withCoder(ShardRef.Coder.of()))
            .apply("ReadHeaders", ReadSafetensorsHeaders.create())
            .apply("DequantizeFp8", DequantizeFp8.withBlocks(cfg.fp8BlockRows, cfg.fp8BlockCols)),
        plan, new CommitCheckpoint(saveDir, plan.targets(), Conversion.sideFiles(loadDir, "config.json"),
            Map.of("config.json", PythonJson.write(config, 2)), SafetensorsIndex.FILE_NAME,
            written -> plan.indexJson(written.stream().mapToLong(f -> f.tensorBytes).sum())));
    Cli.run(p);
    return Cli.report(log, saveDir, Conversion.withExtras(plan.targets(), "config.json", CommitCheckpoint.MANIFEST,
        SafetensorsIndex.FILE_NAME), System.nanoTime() - start);
  }
}
