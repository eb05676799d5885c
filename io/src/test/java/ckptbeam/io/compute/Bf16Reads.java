package ckptbeam.io.compute;

import ckptbeam.io.tensor.AssembledTensor;
import ckptbeam.io.tensor.Band;
import ckptbeam.io.tensor.Shape;
import ckptbeam.io.tensor.SourceSlice;
import ckptbeam.io.tensor.TensorAssembler;
import ckptbeam.io.tensor.TensorLocation;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.Channels;
import java.util.List;
import java.util.Map;

/** Reads a computed bf16 tensor whole through the assembler, as a writer would, for the dequantisation tests. */
final class Bf16Reads {
  private Bf16Reads() {}

  /** The bf16 values of {@code bf16} [rows, cols], in order. */
  static short[] read(TensorLocation bf16, int rows, int cols) throws IOException {
    AssembledTensor t = new AssembledTensor("w", Shape.of(rows, cols),
        List.of(Band.of(SourceSlice.whole("w", rows, cols))));
    ByteArrayOutputStream out = new ByteArrayOutputStream();
    try (TensorAssembler a = new TensorAssembler(64)) {
      a.write(t, Map.of("w", bf16), Channels.newChannel(out));
    }
    ByteBuffer b = ByteBuffer.wrap(out.toByteArray()).order(ByteOrder.LITTLE_ENDIAN);
    short[] res = new short[rows * cols];
    for (int i = 0; i < res.length; i++) {
      res[i] = b.getShort();
    }
    if (b.hasRemaining()) {
      throw new IllegalStateException(b.remaining() + " bytes more than " + rows + " x " + cols + " bf16 values");
    }
    return res;
  }
}
