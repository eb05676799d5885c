package ckptbeam.examples;

import ckptbeam.transforms.ConversionRequest;
import ckptbeam.transforms.LayoutOptions;
import ckptbeam.transforms.beam.CheckpointConversion;
import ckptbeam.transforms.beam.ConversionResult;
import ckptbeam.transforms.beam.ConversionResults;
import org.apache.beam.sdk.Pipeline;
import org.apache.beam.sdk.options.PipelineOptions;
import org.apache.beam.sdk.transforms.Create;
import org.apache.beam.sdk.transforms.MapElements;
import org.apache.beam.sdk.values.PCollection;
import org.apache.beam.sdk.values.TypeDescriptors;

/** The README's example of the conversion transform in a pipeline of one's own; ReadmeExampleTest keeps them equal. */
public final class OwnPipelineExample {
  private OwnPipelineExample() {}

  public static PCollection<String> build(Pipeline p, String hfDir, String mcoreDir) {
    // README example begins
    LayoutOptions layout = LayoutOptions.builder() // the layout flags of hf2mcore, as settings
        .tp(2).ep(4).groupedGemm(true).build();
    ConversionResults results = p
        .apply(Create.of(ConversionRequest.hf2mcore(hfDir, mcoreDir, layout)))
        .apply(CheckpointConversion.convert());
    PCollection<String> report = results.all().apply(MapElements.into(TypeDescriptors.strings())
        .via((ConversionResult r) -> r.request.saveDir() + ": " + r.state + ", " + r.files.size() + " files"));
    // results.succeeded(): complete outputs; results.failed(): each with its message
    // README example ends
    return report;
  }

  public static void run(PipelineOptions options, String hfDir, String mcoreDir) {
    Pipeline p = Pipeline.create(options);
    build(p, hfDir, mcoreDir);
    p.run().waitUntilFinish();
  }
}
