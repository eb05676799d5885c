package ckptbeam.transforms.beam;

import java.util.Map;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.transforms.PTransform;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.PInput;
import org.apache.beam.sdk.values.POutput;
import org.apache.beam.sdk.values.PValue;
import org.apache.beam.sdk.values.TupleTag;

/**
 * What {@link CheckpointConversion} returns: one {@link ConversionResult} per distinct request, split as Beam's
 * {@code WriteFilesResult} and {@code WithFailures.Result} split theirs: {@link #succeeded()} (converted, or already
 * converted), {@link #failed()} (with the message), and {@link #all()} of them.
 */
public final class ConversionResults implements POutput {
  static final TupleTag<ConversionResult> SUCCEEDED = new TupleTag<>("succeeded") {};
  static final TupleTag<ConversionResult> FAILED = new TupleTag<>("failed") {};
  static final TupleTag<ConversionResult> ALL = new TupleTag<>("all") {};

  private final Pipeline pipeline;
  private final PCollection<ConversionResult> succeeded;
  private final PCollection<ConversionResult> failed;
  private final PCollection<ConversionResult> all;

  ConversionResults(PCollection<ConversionResult> succeeded, PCollection<ConversionResult> failed,
      PCollection<ConversionResult> all) {
    this.pipeline = all.getPipeline();
    this.succeeded = succeeded;
    this.failed = failed;
    this.all = all;
  }

  /** Conversions whose output is complete: {@code CONVERTED} or {@code ALREADY_CONVERTED}. */
  public PCollection<ConversionResult> succeeded() {
    return succeeded;
  }

  /** Conversions that failed ({@code FAILED}, with {@link ConversionResult#message}); none left a marker. */
  public PCollection<ConversionResult> failed() {
    return failed;
  }

  /** Every result. */
  public PCollection<ConversionResult> all() {
    return all;
  }

  @Override
  public Pipeline getPipeline() {
    return pipeline;
  }

  @Override
  public Map<TupleTag<?>, PValue> expand() {
    return Map.of(SUCCEEDED, succeeded, FAILED, failed, ALL, all);
  }

  @Override
  public void finishSpecifyingOutput(String transformName, PInput input,
      PTransform<?, ?> transform) {}
}
