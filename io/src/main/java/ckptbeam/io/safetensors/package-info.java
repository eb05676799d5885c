/**
 * HuggingFace safetensors: the strict header reader, the streaming writer and the sharded index
 * (docs/formats.md §2), and JSON written the way Python writes it.
 */
package ckptbeam.io.safetensors;
