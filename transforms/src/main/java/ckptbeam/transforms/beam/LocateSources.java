package ckptbeam.transforms.beam;

import ckptbeam.io.DType;
import ckptbeam.io.TensorLocation;
import java.io.IOException;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.transforms.join.CoGbkResult;
import org.apache.beam.sdk.transforms.join.CoGroupByKey;
import org.apache.beam.sdk.transforms.join.KeyedPCollectionTuple;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PCollectionTuple;
import org.apache.beam.sdk.values.TupleTag;

/**
 * Joins what target files need (by source name) with where the sources are, and re-keys each location by the
 * target file that needs it. Checks each source against the shape the plan expects and refuses dtypes it cannot
 * convert yet. Only descriptions are shuffled here, never tensor bytes.
 */
public final class LocateSources extends PTransform<PCollectionTuple, PCollection<KV<String, TensorLocation>>> {
  public static final TupleTag<TensorLocation> LOCATIONS = new TupleTag<>() {};
  public static final TupleTag<SourceRequest> REQUESTS = new TupleTag<>() {};

  public static LocateSources create() {
    return new LocateSources();
  }

  @Override
  public PCollection<KV<String, TensorLocation>> expand(PCollectionTuple input) {
    PCollection<KV<String, TensorLocation>> locations = input.get(LOCATIONS.getId());
    PCollection<KV<String, SourceRequest>> requests = input.get(REQUESTS.getId());
    return KeyedPCollectionTuple.of(LOCATIONS, locations)
        .and(REQUESTS, requests)
        .apply("JoinBySourceName", CoGroupByKey.create())
        .apply("KeyByTarget", ParDo.of(new KeyByTargetFn()));
  }

  static final class KeyByTargetFn extends DoFn<KV<String, CoGbkResult>, KV<String, TensorLocation>> {
    @ProcessElement
    public void process(@Element KV<String, CoGbkResult> e, OutputReceiver<KV<String, TensorLocation>> out)
        throws IOException {
      Iterable<SourceRequest> requests = e.getValue().getAll(REQUESTS);
      if (!requests.iterator().hasNext()) {
        return; // a source nobody needs
      }
      TensorLocation loc = e.getValue().getOnly(LOCATIONS, null);
      if (loc == null) {
        throw new IOException("tensor \"" + e.getKey() + "\" is needed but is not in the input checkpoint");
      }
      if (loc.dtype() == DType.F8_E4M3 || loc.dtype() == DType.F8_E5M2) {
        throw new IOException(loc.file() + ": tensor \"" + loc.name() + "\" is " + loc.dtype()
            + " but config.json declares no quantization_config, so it cannot be dequantised");
      }
      for (SourceRequest r : requests) {
        if (r.expectedShape != null && !loc.shape().equals(r.expectedShape)) {
          throw new IOException(loc.file() + ": tensor \"" + loc.name() + "\" has shape " + loc.shape()
              + " but config.json implies " + r.expectedShape);
        }
        out.output(KV.of(r.target, loc));
      }
    }
  }
}
