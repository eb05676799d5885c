/**
 * torch.save checkpoints as Megatron-core uses them: the zip container, the safe pickle reader and the protocol-2
 * writer over one opcode table, and the tracker file of an mcore checkpoint folder (docs/formats.md §1).
 */
package ckptbeam.io.torch;
