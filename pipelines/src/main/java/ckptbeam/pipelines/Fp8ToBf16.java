package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import java.io.PrintStream;

/** {@code ckptbeam fp8-to-bf16}: the CPU replacement of DeepSeek's {@code fp8_cast_bf16.py}. */
final class Fp8ToBf16 {
  private Fp8ToBf16() {}

  static long run(String[] argv, PrintStream log) throws Exception {
    Args a = new Args().value("load-dir").value("save-dir").flag("overwrite").flag("resume").parse(argv);
    ConversionRequest r = ConversionRequest.fp8ToBf16(Cli.absolute(a.require("load-dir")),
        Cli.absolute(a.require("save-dir"))).withOptions(Conversion.options(a))
        .withExistingOutput(Conversion.existingOutput(a));
    return Conversion.run(r, Cli.pipelineOptions(a.beamArgs(), "fp8-to-bf16"), log);
  }
}
