#!/usr/bin/env bash
# The layout of MindSpeed-LLM's shipped ckpt_convert_deepseek3_merge_lora2hf.sh, with ckptbeam: a LoRA fine-tune
# (tp 1, pp 4, ep 8, grouped GEMM, 61 layers in stages of 16,15,15,15, first 3 layers dense) merged into its base
# as it is read, W + (alpha/r) B A, and written as HF safetensors.
#   MCORE_DIR: the base checkpoint; LORA_DIR: the LoRA-only checkpoint (leave empty when the LoRA weights are in
#   MCORE_DIR); HF_DIR: the output; CKPTBEAM: the launcher; extra arguments are passed on.
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
MCORE_DIR="${MCORE_DIR:-./model_weights/deepseek3-mcore}"
LORA_DIR="${LORA_DIR-./ckpt/deepseek3-lora}"
HF_DIR="${HF_DIR:-./model_from_hf/deepseek3-lora-merged-hf}"
lora=()
[ -n "$LORA_DIR" ] && lora=(--lora-load "$LORA_DIR")

"$CKPTBEAM" mcore2hf \
  --moe-grouped-gemm \
  --source-tensor-parallel-size 1 \
  --source-pipeline-parallel-size 4 \
  --source-expert-parallel-size 8 \
  --num-layers 61 \
  --first-k-dense-replace 3 \
  --num-layer-list 16,15,15,15 \
  --lora-r 8 \
  --lora-alpha 16 \
  --load-dir "$MCORE_DIR" \
  --save-dir "$HF_DIR" \
  "${lora[@]}" \
  "$@"
