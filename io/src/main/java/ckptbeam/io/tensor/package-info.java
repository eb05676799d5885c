/**
 * Tensors as descriptions: dtype, shape, where the bytes are ({@link ckptbeam.io.tensor.TensorLocation}), windows of
 * them ({@link ckptbeam.io.tensor.SourceSlice}), and the assembler that streams a target tensor from source byte
 * ranges (with the transpose and bf16 kernels it runs).
 */
package ckptbeam.io.tensor;
