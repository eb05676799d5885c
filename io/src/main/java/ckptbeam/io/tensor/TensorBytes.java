package ckptbeam.io.tensor;

import java.io.IOException;
import java.nio.channels.WritableByteChannel;

/**
 * Produces the bytes of one tensor into a sink, in order, without holding the whole tensor: writers call it when
 * they reach the tensor's place in the output file.
 */
@FunctionalInterface
public interface TensorBytes {
  /** Writes exactly the tensor's byte size to {@code sink}. */
  void writeTo(WritableByteChannel sink) throws IOException;
}
