package ckptbeam.transforms.beam;

import ckptbeam.io.CheckpointFormatException;
import ckptbeam.io.DType;
import ckptbeam.io.Fp8Dequant;
import ckptbeam.io.TensorLocation;
import java.io.IOException;
import org.apache.beam.sdk.transforms.DoFn;
import org.apache.beam.sdk.transforms.GroupByKey;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.transforms.ParDo;
import org.apache.beam.sdk.values.KV;
import org.apache.beam.sdk.values.PCollection;

/**
 * Pairs each FP8 weight with its {@code <name>_scale_inv} (wherever the index put it) and replaces it by a bf16 view
 * that dequantises as it is read (formats.md §3.3). A weight without its scale is an error naming both (DeepSeek's
 * script only warns and keeps FP8 bytes). Only descriptions are grouped.
 */
public final class DequantizeFp8
    extends PTransform<PCollection<KV<String, TensorLocation>>, PCollection<KV<String, TensorLocation>>> {
  public static final String SCALE_SUFFIX = "_scale_inv";

  private final int blockRows;
  private final int blockCols;

  private DequantizeFp8(int blockRows, int blockCols) {
    this.blockRows = blockRows;
    this.blockCols = blockCols;
  }

  public static DequantizeFp8 withBlocks(int blockRows, int blockCols) {
    return new DequantizeFp8(blockRows, blockCols);
  }

  @Override
  public PCollection<KV<String, TensorLocation>> expand(PCollection<KV<String, TensorLocation>> locations) {
    return locations
        .apply("KeyByWeight", ParDo.of(new KeyByWeightFn()))
        .apply("PairWithScale", GroupByKey.create())
        .apply("Dequantize", ParDo.of(new DequantizeFn(blockRows, blockCols)));
  }

  static final class KeyByWeightFn extends DoFn<KV<String, TensorLocation>, KV<String, TensorLocation>> {
    @ProcessElement
    public void process(@Element KV<String, TensorLocation> e, OutputReceiver<KV<String, TensorLocation>> out) {
      String name = e.getKey();
      String weight = name.endsWith(SCALE_SUFFIX) ? name.substring(0, name.length() - SCALE_SUFFIX.length()) : name;
      out.output(KV.of(weight, e.getValue()));
    }
  }

  static final class DequantizeFn extends DoFn<KV<String, Iterable<TensorLocation>>, KV<String, TensorLocation>> {
    private final int blockRows;
    private final int blockCols;

    DequantizeFn(int blockRows, int blockCols) {
      this.blockRows = blockRows;
      this.blockCols = blockCols;
    }

    @ProcessElement
    public void process(@Element KV<String, Iterable<TensorLocation>> e, OutputReceiver<KV<String, TensorLocation>> out)
        throws IOException {
      TensorLocation weight = null;
      TensorLocation scale = null;
      for (TensorLocation t : e.getValue()) {
        if (t.name().equals(e.getKey())) {
          weight = t;
        } else {
          scale = t;
        }
      }
      if (weight == null) {
        return; // a scale whose weight the index does not list
      }
      if (weight.dtype() != DType.F8_E4M3) {
        out.output(KV.of(weight.name(), weight));
        return;
      }
      if (scale == null) {
        throw new CheckpointFormatException(weight.file(), "MissingScale", "tensor \"" + weight.name()
            + "\" is F8_E4M3 but the checkpoint has no \"" + weight.name() + SCALE_SUFFIX + "\" to dequantise it with");
      }
      out.output(KV.of(weight.name(), new Fp8Dequant(weight, scale, blockRows, blockCols).asBf16()));
    }
  }
}
