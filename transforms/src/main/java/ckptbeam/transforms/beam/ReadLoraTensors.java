package ckptbeam.transforms.beam;

import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.PickleReader;
import ckptbeam.io.TorchCheckpointReader;
import ckptbeam.io.TensorLocation;
import java.io.IOException;
import java.util.Map;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;

/**
 * Emits where every LoRA factor of each rank file is, under its canonical name ({@code X.lora_A.default.weight};
 * the {@code lora_a} spelling is accepted), for LoRA export.
 */
public final class ReadLoraTensors extends PTransform<PCollection<String>, PCollection<KV<String, TensorLocation>>> {
  private final String loadDir;

  private ReadLoraTensors(String loadDir) {
    this.loadDir = loadDir;
  }

  public static ReadLoraTensors from(String loadDir) {
    return new ReadLoraTensors(loadDir);
  }

  @Override
  public PCollection<KV<String, TensorLocation>> expand(PCollection<String> rankPaths) {
    return rankPaths.apply("ReadLoraFactors", ParDo.of(new ReadFn(loadDir)));
  }

  static final class ReadFn extends DoFn<String, KV<String, TensorLocation>> {
    private final String loadDir;

    ReadFn(String loadDir) {
      this.loadDir = loadDir;
    }

    @ProcessElement
    public void process(@Element String rankPath, OutputReceiver<KV<String, TensorLocation>> out) throws IOException {
      String path = CheckpointFiles.resolve(loadDir, rankPath);
      if (!CheckpointFiles.exists(path)) {
        throw new IOException(path + ": rank file missing");
      }
      String rankDir = rankPath.split("/")[1];
      TorchCheckpointReader reader = TorchCheckpointReader.open(path);
      for (Object top : ((Map<?, ?>) reader.root()).keySet()) {
        if (!(top instanceof String) || !((String) top).startsWith("model")) {
          continue;
        }
        for (Map.Entry<String, PickleReader.TorchTensor> e : reader.tensors((String) top).entrySet()) {
          String key = e.getKey().replace(".lora_a.default.", ".lora_A.default.").replace(".lora_b.default.",
              ".lora_B.default.");
          if (key.contains(".lora_A.default.") || key.contains(".lora_B.default.")) {
            String name = rankDir + ":" + top + "/" + key;
            out.output(KV.of(name, reader.locate(name, e.getValue())));
          }
        }
      }
    }
  }
}
