#!/usr/bin/env bash
# The layout of MindSpeed-LLM's shipped ckpt_convert_deepseek3_hf2mcore.sh, with ckptbeam: DeepSeek-V3 bf16 HF ->
# Megatron-core, grouped GEMM, tp 2, pp 8, ep 32, 64 layer slots with noop slots 47, 62, 63, one MTP layer, two
# layers per virtual pipeline chunk. Model dimensions come from the HF config.json.
#   HF_DIR, MCORE_DIR: the folders (defaults as in MindSpeed's script); CKPTBEAM: the launcher; extra arguments
#   are passed on (e.g. --dry-run, --resume, --runner=FlinkRunner ...).
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
HF_DIR="${HF_DIR:-./model_from_hf/deepseek3-bf16-hf}"
MCORE_DIR="${MCORE_DIR:-./model_weights/deepseek3-mcore}"

"$CKPTBEAM" hf2mcore \
  --moe-grouped-gemm \
  --target-tensor-parallel-size 2 \
  --target-pipeline-parallel-size 8 \
  --target-expert-parallel-size 32 \
  --num-layers 64 \
  --mtp-num-layers 1 \
  --num-layers-per-virtual-pipeline-stage 2 \
  --noop-layers 47,62,63 \
  --load-dir "$HF_DIR" \
  --save-dir "$MCORE_DIR" \
  "$@"
