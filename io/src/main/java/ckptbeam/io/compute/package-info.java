/**
 * Sources whose bytes are computed as they are read, any byte range at a time: DeepSeek FP8 dequantisation, NF4
 * quantisation and dequantisation, and the LoRA merge. Numerics follow docs/formats.md §3 and docs/mapping.md §5.5, §7.
 */
package ckptbeam.io.compute;
