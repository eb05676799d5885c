package ckptbeam.io.compute;

import ckptbeam.io.storage.RangeReader;
import ckptbeam.io.tensor.TensorLocation;
import java.io.IOException;
import java.io.Serializable;

/**
 * A tensor whose bytes are computed as they are read rather than copied: a LoRA merge, an FP8 or NF4
 * dequantisation. It is a small serialisable description carried by a {@link TensorLocation}; the reader it opens
 * serves any byte range of the computed tensor, so the assembler treats it like a file.
 */
public interface ComputedSource extends Serializable {
  /** A reader of the computed bytes of {@code self}, whose offsets start at {@code self.offset()}. */
  RangeReader open(TensorLocation self) throws IOException;
}
