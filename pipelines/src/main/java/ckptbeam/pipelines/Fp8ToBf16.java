package ckptbeam.pipelines;

import ckptbeam.transforms.ConversionRequest;
import java.io.PrintStream;

/** {@code ckptbeam fp8-to-bf16}: the CPU replacement of DeepSeek's {@code fp8_cast_bf16.py}. */
final class Fp8ToBf16 {
  private Fp8ToBf16() {}

  static Args flags() {
    return Conversion.common(new Args()
        .value("load-dir").help("DIR", "DeepSeek's FP8 checkpoint folder (config.json with quantization_config). "
            + "Required.")
        .value("save-dir").help("DIR", "The bf16 output folder. Required."));
  }

  static long run(String[] argv, PrintStream log) throws Exception {
    Args a = flags().parse(argv);
    ConversionRequest r = ConversionRequest.fp8ToBf16(Cli.absolute(a.require("load-dir")),
        Cli.absolute(a.require("save-dir"))).withOptions(Conversion.options(a))
        .withExistingOutput(Conversion.existingOutput(a));
    return Conversion.run(r, Cli.pipelineOptions(a, "fp8-to-bf16"), log, a.has("quiet"));
  }
}
