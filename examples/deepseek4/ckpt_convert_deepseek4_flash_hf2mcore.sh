#!/usr/bin/env bash
# The layout of MindSpeed-LLM's shipped ckpt_convert_deepseek4_flash_hf2mcore.sh, with ckptbeam: DeepSeek-V4-Flash
# HF (bf16, or the FP8 + MXFP4 release: read directly) -> Megatron-core, grouped GEMM, tp 1, pp 4, ep 32, expert-TP 1,
# 44 layer slots with the noop slot 43, one MTP layer. Model dimensions come from the HF config.json; the rank files
# carry MindSpeed's args.
#   HF_DIR, MCORE_DIR: the folders (defaults as in MindSpeed's script); CKPTBEAM: the launcher; extra arguments
#   are passed on (e.g. --dry-run, --resume, --runner=FlinkRunner ...).
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
HF_DIR="${HF_DIR:-./model_from_hf/deepseek4-flash-hf}"
MCORE_DIR="${MCORE_DIR:-./model_weights/deepseek4-flash-mcore}"

"$CKPTBEAM" hf2mcore \
  --load-model-type hf \
  --save-model-type mg \
  --model-type-hf deepseek4 \
  --moe-grouped-gemm \
  --target-tensor-parallel-size 1 \
  --target-pipeline-parallel-size 4 \
  --target-expert-parallel-size 32 \
  --expert-tensor-parallel-size 1 \
  --noop-layers 43 \
  --mtp-num-layers 1 \
  --load-dir "$HF_DIR" \
  --save-dir "$MCORE_DIR" \
  "$@"
