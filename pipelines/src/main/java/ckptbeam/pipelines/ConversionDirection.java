package ckptbeam.pipelines;

import ckptbeam.io.safetensors.SafetensorsIndex;
import ckptbeam.transforms.Hf2McorePlan;

/** Which conversion {@code watch} gives each checkpoint (workers load this, never the driver-only command class). */
enum ConversionDirection {
  HF2MCORE("hf2mcore"), MCORE2HF("mcore2hf");

  final String flag;

  ConversionDirection(String flag) {
    this.flag = flag;
  }

  static ConversionDirection parse(String s) {
    for (ConversionDirection d : values()) {
      if (d.flag.equals(s)) {
        return d;
      }
    }
    throw new IllegalArgumentException("--direction must be hf2mcore or mcore2hf, got \"" + s + "\"");
  }

  Args conversionFlags() {
    return this == HF2MCORE ? Hf2Mcore.flags() : Mcore2Hf.flags();
  }

  /** The file that marks a finished output. */
  String outputMarker() {
    return this == HF2MCORE ? Hf2McorePlan.TRACKER : SafetensorsIndex.FILE_NAME;
  }
}
