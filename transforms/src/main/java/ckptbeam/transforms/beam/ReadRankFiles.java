package ckptbeam.transforms.beam;

import ckptbeam.io.AssembledTensor;
import ckptbeam.io.CheckpointFiles;
import ckptbeam.io.PickleReader;
import ckptbeam.io.TensorLocation;
import ckptbeam.io.TorchCheckpointReader;
import ckptbeam.transforms.LoraOptions;
import ckptbeam.transforms.Mcore2HfPlan;
import ckptbeam.transforms.RankFile;
import java.io.IOException;
import java.util.List;
import java.util.Map;
import java.util.TreeSet;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;

/**
 * Reads the pickle of each rank file (never its tensor bytes) and emits where each tensor is. Every rank file is
 * checked against the layout: a missing key or a wrong shape is an error naming the file and the key, and so is a
 * tensor the layout would not convert (a dropped MTP layer, experts of another layout) — exports must not silently
 * lose weights.
 */
public final class ReadRankFiles extends PTransform<PCollection<String>, PCollection<KV<String, TensorLocation>>> {
  private final Mcore2HfPlan plan;
  private final String loadDir;
  private final LoraOptions lora;

  private ReadRankFiles(Mcore2HfPlan plan, String loadDir, LoraOptions lora) {
    this.plan = plan;
    this.loadDir = loadDir;
    this.lora = lora;
  }

  public static ReadRankFiles of(Mcore2HfPlan plan, String loadDir) {
    return new ReadRankFiles(plan, loadDir, null);
  }

  /** LoRA weights found next to each base tensor (or in {@code lora.loraDir}) are merged as the base is read. */
  public ReadRankFiles withLora(LoraOptions lora) {
    return new ReadRankFiles(plan, loadDir, lora);
  }

  @Override
  public PCollection<KV<String, TensorLocation>> expand(PCollection<String> rankPaths) {
    return rankPaths.apply("ReadRankFile", ParDo.of(new ReadFn(plan, loadDir, lora)));
  }

  static final class ReadFn extends DoFn<String, KV<String, TensorLocation>> {
    private static final org.slf4j.Logger LOG = org.slf4j.LoggerFactory.getLogger(ReadRankFiles.class);
    private transient boolean warnedNf4;
    private final Mcore2HfPlan plan;
    private final String loadDir;
    private final LoraOptions lora;

    ReadFn(Mcore2HfPlan plan, String loadDir, LoraOptions lora) {
      this.plan = plan;
      this.loadDir = loadDir;
      this.lora = lora;
    }

    @ProcessElement
    public void process(@Element String rankPath, OutputReceiver<KV<String, TensorLocation>> out) throws IOException {
      RankFile rank = null;
      for (RankFile f : plan.forward().rankFiles()) {
        if (plan.rankPath(f).equals(rankPath)) {
          rank = f;
        }
      }
      String path = CheckpointFiles.resolve(loadDir, rankPath);
      TorchCheckpointReader reader = TorchCheckpointReader.open(path);
      TorchCheckpointReader loraReader = reader;
      if (lora != null && lora.loraDir != null) {
        String loraPath = CheckpointFiles.resolve(lora.loraDir, lora.loraIterationDir + "/" + rank.dirName() + "/"
            + RankFile.FILE_NAME);
        if (!CheckpointFiles.exists(loraPath)) {
          throw new IOException(loraPath + ": the --lora-load checkpoint has no rank file for " + rank.dirName());
        }
        loraReader = TorchCheckpointReader.open(loraPath);
      }
      for (Map.Entry<String, List<AssembledTensor>> chunk : plan.forward().contents(rank).entrySet()) {
        Map<String, PickleReader.TorchTensor> present = reader.tensors(chunk.getKey());
        Map<String, PickleReader.TorchTensor> loraTensors = loraReader == reader ? present
            : loraReader.tensors(chunk.getKey());
        LoraLookup lookup = new LoraLookup(present, loraTensors, lora);
        TreeSet<String> unexpected = new TreeSet<>(present.keySet());
        chunk.getValue().forEach(t -> unexpected.removeAll(lookup.keysOf(t.key())));
        chunk.getValue().forEach(t -> unexpected.removeAll(Nf4Entries.siblings(t.key())));
        unexpected.removeIf(k -> k.endsWith("_extra_state"));
        // name the most telling one: an MTP or LoRA key says which flag is missing
        String example = unexpected.stream().filter(k -> !hint(k).equals(hint(""))).findFirst()
            .orElse(unexpected.isEmpty() ? "" : unexpected.first());
        String also = unexpected.isEmpty() ? "" : "; it also holds " + unexpected.size() + " tensor(s) the layout "
            + "would not convert, e.g. \"" + example + "\"" + hint(example);
        for (AssembledTensor t : chunk.getValue()) {
          String baseKey = lookup.baseKey(t.key());
          PickleReader.TorchTensor found = present.get(baseKey);
          if (found == null) {
            throw new IOException(path + ": " + chunk.getKey() + " has no tensor \"" + t.key() + "\", which the "
                + "layout expects" + (also.isEmpty() ? "; check the layout flags against the ones used to write the "
                + "checkpoint" : also));
          }
          String name = Mcore2HfPlan.sourceName(rank, chunk.getKey(), t.key());
          if (Nf4Entries.isNf4(present, baseKey)) {
            TensorLocation nf4 = Nf4Entries.dequantised(reader, present, baseKey, name);
            if (!nf4.shape().equals(t.shape())) {
              throw new IOException(path + ": " + chunk.getKey() + "/" + baseKey + " is NF4 of shape " + nf4.shape()
                  + " but the layout and config.json imply " + t.shape());
            }
            if (!warnedNf4) {
              LOG.warn("{}: NF4-quantised weights are dequantised to {}; the result is lossy (the NF4 code points, "
                  + "not the original weights)", path, nf4.dtype());
              warnedNf4 = true;
            }
            out.output(KV.of(name, nf4));
            continue;
          }
          if (!found.shape().equals(t.shape())) {
            throw new IOException(path + ": " + chunk.getKey() + "/" + baseKey + " has shape " + found.shape()
                + " but the layout and config.json imply " + t.shape());
          }
          TensorLocation loc = reader.locate(name, found);
          out.output(KV.of(name, lookup.merge(t.key(), loc, loraReader, path, plan.forward().config().hiddenSize)));
        }
        if (!unexpected.isEmpty()) {
          throw new IOException(path + ": " + chunk.getKey() + also.substring(also.indexOf(" holds")));
        }
        if (loraReader != reader) {
          TreeSet<String> leftover = new TreeSet<>(loraTensors.keySet());
          chunk.getValue().forEach(t -> leftover.removeAll(lookup.keysOf(t.key())));
          leftover.removeIf(k -> k.endsWith("_extra_state") || !k.toLowerCase(java.util.Locale.ROOT).contains("lora"));
          if (!leftover.isEmpty()) {
            throw new IOException(loraReader.file() + ": " + chunk.getKey() + " holds LoRA weights for a module the "
                + "layout does not hold, e.g. \"" + leftover.first() + "\"");
          }
        }
      }
    }

    private static String hint(String key) {
      if (key.contains("mtp")) {
        return "; pass --mtp-num-layers to convert the MTP layers";
      }
      if (key.toLowerCase(java.util.Locale.ROOT).contains("lora")) {
        return "; LoRA weights are present: pass --lora-r and --lora-alpha to merge them";
      }
      return "; check the layout flags against the ones used to write the checkpoint";
    }
  }
}
