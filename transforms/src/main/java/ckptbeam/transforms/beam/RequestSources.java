package ckptbeam.transforms.beam;

import ckptbeam.io.Shape;
import ckptbeam.transforms.ConversionPlan;
import java.util.Map;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PBegin;
import org.apache.beam.sdk.values.PCollection;

/** For every target file of the plan, the source tensors it needs, keyed by source name. */
public final class RequestSources extends PTransform<PBegin, PCollection<KV<String, SourceRequest>>> {
  private final ConversionPlan plan;

  private RequestSources(ConversionPlan plan) {
    this.plan = plan;
  }

  public static RequestSources of(ConversionPlan plan) {
    return new RequestSources(plan);
  }

  @Override
  public PCollection<KV<String, SourceRequest>> expand(PBegin begin) {
    return begin.apply("TargetFiles", Create.of(plan.targets()))
        .apply("SourcesOfFile", ParDo.of(new RequestFn(plan)));
  }

  static final class RequestFn extends DoFn<String, KV<String, SourceRequest>> {
    private final ConversionPlan plan;

    RequestFn(ConversionPlan plan) {
      this.plan = plan;
    }

    @ProcessElement
    public void process(@Element String target, OutputReceiver<KV<String, SourceRequest>> out) {
      for (Map.Entry<String, Shape> s : plan.sourcesOf(target).entrySet()) {
        out.output(KV.of(s.getKey(), new SourceRequest(target, s.getValue())));
      }
    }
  }
}
