package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsHeader;
import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.DType;
import ckptbeam.io.tensor.TensorLocation;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.HfShardsPlan;
import ckptbeam.transforms.LayerPlacement;
import ckptbeam.transforms.RankFile;
import ckptbeam.transforms.SourceFile;
import java.io.IOException;
import java.io.PrintStream;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/** {@code hf2mcore --dry-run}: the plan, rank file by rank file, with nothing written. */
final class DryRun {
  private DryRun() {}

  static void print(Hf2McorePlan plan, List<SourceFile> shards, String saveDir, PrintStream log) throws IOException {
    Map<String, DType> dtypes = new HashMap<>();
    for (SourceFile s : shards) {
      for (TensorLocation t : SafetensorsHeader.read(s.path()).tensors()) {
        dtypes.put(t.name(), t.dtype() == DType.F8_E4M3 ? DType.BF16 : t.dtype()); // FP8 is dequantised
      }
    }
    LayerPlacement lp = plan.placement();
    long totalBytes = 0;
    int totalTensors = 0;
    log.println("dry run: nothing is written; the plan for " + saveDir + ":");
    for (RankFile f : plan.rankFiles()) {
      long bytes = 0;
      int tensors = 0;
      List<String> chunks = new ArrayList<>();
      int v = 0;
      for (Map.Entry<String, List<AssembledTensor>> chunk : plan.contents(f).entrySet()) {
        for (AssembledTensor t : chunk.getValue()) {
          DType d = dtypes.get(t.bands().get(0).slices().get(0).source());
          bytes += t.shape().byteSize(d == null ? DType.BF16 : d);
          tensors++;
        }
        LayerPlacement.Chunk c = lp.chunk(f.ppRank, v++);
        List<String> layers = new ArrayList<>();
        c.layers.forEach(l -> layers.add("HF " + l.hfIndex() + "→" + l.local()));
        String extras = (c.embedding ? " +embedding" : "") + (c.mtp.isEmpty() ? "" : " +MTP HF " + c.mtp)
            + (c.finalNorm ? " +final norm, output layer" : "");
        chunks.add(chunk.getKey() + ": " + (layers.isEmpty() ? "no decoder layer" : String.join(", ", layers)) + extras
            + " (" + chunk.getValue().size() + " tensors)");
      }
      log.printf("%s  %d tensors, %,d bytes%n", f.relativePath(Hf2McorePlan.ITERATION), tensors, bytes);
      chunks.forEach(c -> log.println("    " + c));
      totalBytes += bytes;
      totalTensors += tensors;
    }
    log.printf("total: %d rank file(s), %d tensors, %,d bytes%n", plan.rankFiles().size(), totalTensors, totalBytes);
  }

  /** {@code mcore2hf --dry-run}: the rank files read and the HF files written, tensor by tensor counts. */
  static void print(HfShardsPlan plan, String saveDir, PrintStream log) {
    log.println("dry run: nothing is written; the plan for " + saveDir + ":");
    log.printf("reads %d rank file(s) of %s%n", plan.rankFiles().size(), plan.rankFiles().isEmpty() ? "-"
        : plan.rankFiles().get(0).split("/")[0]);
    long totalBytes = 0;
    int totalTensors = 0;
    for (Map.Entry<String, List<AssembledTensor>> f : plan.files().entrySet()) {
      long bytes = 0;
      for (AssembledTensor t : f.getValue()) {
        bytes += t.shape().byteSize(DType.BF16);
      }
      log.printf("%s  %d tensors, %,d bytes (bf16)%n", f.getKey(), f.getValue().size(), bytes);
      totalBytes += bytes;
      totalTensors += f.getValue().size();
    }
    log.printf("total: %d HF file(s), %d tensors, %,d bytes%n", plan.files().size(), totalTensors, totalBytes);
  }
}
