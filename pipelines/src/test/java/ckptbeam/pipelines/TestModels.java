package ckptbeam.pipelines;

import java.nio.file.Path;

/** Tiny generated models for tests outside this package. */
public final class TestModels {
  private TestModels() {}

  /** The default tiny DeepSeek-V3-shaped HF checkpoint of {@code make-tiny-model}. */
  public static long tiny(Path dir) throws Exception {
    return TinyModel.write(dir, TinyModel.DEFAULTS);
  }
}
