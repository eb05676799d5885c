/**
 * Bytes on disk and how to read and write them without holding a tensor: {@code tensor} (what a tensor is and how
 * target tensors are assembled from source byte ranges), {@code safetensors} and {@code torch} (the two checkpoint
 * formats), {@code compute} (tensors whose bytes are computed while read: FP8, NF4, LoRA merge) and {@code storage}
 * (local and gs:// files, staged output, channels, hashing). Format errors are {@link CheckpointFormatException}s.
 */
package ckptbeam.io;
