package ckptbeam.transforms.beam;

import ckptbeam.io.TensorLocation;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.RankFile;
import ckptbeam.transforms.RankFileWriter;
import java.io.IOException;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.join.CoGbkResult;
import org.apache.beam.sdk.transforms.join.CoGroupByKey;
import org.apache.beam.sdk.transforms.join.KeyedPCollectionTuple;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Groups source locations by target rank file and writes each file: one writer per file, which streams the bytes
 * from the sources. Every rank file of the plan is written, also one that needs no source.
 */
public final class WriteRankFiles
    extends PTransform<PCollection<KV<String, TensorLocation>>, PCollection<WrittenFile>> {
  private static final TupleTag<TensorLocation> SOURCES = new TupleTag<>() {};
  private static final TupleTag<Integer> FILES = new TupleTag<>() {};

  private final Hf2McorePlan plan;
  private final String saveDir;

  private WriteRankFiles(Hf2McorePlan plan, String saveDir) {
    this.plan = plan;
    this.saveDir = saveDir;
  }

  public static WriteRankFiles of(Hf2McorePlan plan, String saveDir) {
    return new WriteRankFiles(plan, saveDir);
  }

  @Override
  public PCollection<WrittenFile> expand(PCollection<KV<String, TensorLocation>> located) {
    List<RankFile> files = plan.rankFiles();
    List<KV<String, Integer>> seeds = new java.util.ArrayList<>();
    for (int i = 0; i < files.size(); i++) {
      seeds.add(KV.of(files.get(i).dirName(), i));
    }
    PCollection<KV<String, Integer>> all = located.getPipeline().apply("RankFiles", Create.of(seeds));
    return KeyedPCollectionTuple.of(SOURCES, located)
        .and(FILES, all)
        .apply("GroupByTargetFile", CoGroupByKey.create())
        .apply("WriteFile", ParDo.of(new WriteFn(plan, saveDir)));
  }

  static final class WriteFn extends DoFn<KV<String, CoGbkResult>, WrittenFile> {
    private final Hf2McorePlan plan;
    private final String saveDir;

    WriteFn(Hf2McorePlan plan, String saveDir) {
      this.plan = plan;
      this.saveDir = saveDir;
    }

    @ProcessElement
    public void process(@Element KV<String, CoGbkResult> e, OutputReceiver<WrittenFile> out) throws IOException {
      int index = e.getValue().getOnly(FILES);
      RankFile file = plan.rankFiles().get(index);
      Map<String, TensorLocation> sources = new HashMap<>();
      for (TensorLocation loc : e.getValue().getAll(SOURCES)) {
        sources.put(loc.name(), loc);
      }
      out.output(RankFileWriter.write(plan, file, sources, saveDir));
    }
  }
}
