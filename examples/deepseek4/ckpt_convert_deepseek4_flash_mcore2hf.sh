#!/usr/bin/env bash
# The layout of MindSpeed-LLM's shipped ckpt_convert_deepseek4_flash_mcore2hf.sh, with ckptbeam: the mirror of the
# hf2mcore script back to HF safetensors, one file per layer, config.json copied, the index written last. The layout
# flags are checked against the args the rank files carry (without them, the args decide).
#   MCORE_DIR, HF_DIR: the folders; CKPTBEAM: the launcher; extra arguments are passed on.
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
MCORE_DIR="${MCORE_DIR:-./model_weights/deepseek4-flash-mcore}"
HF_DIR="${HF_DIR:-./model_from_hf/deepseek4-flash-hf-from-mcore}"

"$CKPTBEAM" mcore2hf \
  --load-model-type mg \
  --save-model-type hf \
  --model-type-hf deepseek4 \
  --moe-grouped-gemm \
  --noop-layers 43 \
  --mtp-num-layers 1 \
  --expert-tensor-parallel-size 1 \
  --load-dir "$MCORE_DIR" \
  --save-dir "$HF_DIR" \
  "$@"
