#!/usr/bin/env bash
# The layout of MindSpeed-LLM's shipped ckpt_convert_deepseek3_mcore2hf.sh, with ckptbeam: the mirror of the
# hf2mcore script (grouped GEMM, tp 2, pp 8, ep 32, 64 slots, noop 47,62,63, one MTP layer, VPP 2) back to HF
# safetensors, one file per layer, the index written last.
#   MCORE_DIR, HF_DIR: the folders; MODEL_CONFIG: the HF config.json when MCORE_DIR has none (hf2mcore copies it
#   there); CKPTBEAM: the launcher; extra arguments are passed on.
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
MCORE_DIR="${MCORE_DIR:-./model_weights/deepseek3-mcore}"
HF_DIR="${HF_DIR:-./model_from_hf/deepseek3-hf-from-mcore}"
config=()
[ -n "${MODEL_CONFIG:-}" ] && config=(--model-config "$MODEL_CONFIG")

"$CKPTBEAM" mcore2hf \
  --moe-grouped-gemm \
  --source-tensor-parallel-size 2 \
  --source-pipeline-parallel-size 8 \
  --source-expert-parallel-size 32 \
  --num-layers 64 \
  --mtp-num-layers 1 \
  --num-layers-per-virtual-pipeline-stage 2 \
  --noop-layers 47,62,63 \
  --load-dir "$MCORE_DIR" \
  --save-dir "$HF_DIR" \
  "${config[@]}" \
  "$@"
