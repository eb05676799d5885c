package ckptbeam.transforms.beam;

import ckptbeam.io.Shape;
import ckptbeam.transforms.Hf2McorePlan;
import ckptbeam.transforms.RankFile;
import java.util.Map;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;

/** For every rank file of the plan, the source tensors it needs, keyed by source name. */
public final class RequestSources extends PTransform<PBegin, PCollection<KV<String, SourceRequest>>> {
  private final Hf2McorePlan plan;

  private RequestSources(Hf2McorePlan plan) {
    this.plan = plan;
  }

  public static RequestSources of(Hf2McorePlan plan) {
    return new RequestSources(plan);
  }

  @Override
  public PCollection<KV<String, SourceRequest>> expand(PBegin begin) {
    int n = plan.rankFiles().size();
    java.util.List<Integer> indexes = new java.util.ArrayList<>();
    for (int i = 0; i < n; i++) {
      indexes.add(i);
    }
    return begin.apply("RankFileIndexes", Create.of(indexes))
        .apply("SourcesOfFile", ParDo.of(new RequestFn(plan)));
  }

  static final class RequestFn extends DoFn<Integer, KV<String, SourceRequest>> {
    private final Hf2McorePlan plan;

    RequestFn(Hf2McorePlan plan) {
      this.plan = plan;
    }

    @ProcessElement
    public void process(@Element Integer index, OutputReceiver<KV<String, SourceRequest>> out) {
      RankFile file = plan.rankFiles().get(index);
      for (Map.Entry<String, Shape> s : plan.sourcesOf(file).entrySet()) {
        out.output(KV.of(s.getKey(), new SourceRequest(file.dirName(), s.getValue())));
      }
    }
  }
}
