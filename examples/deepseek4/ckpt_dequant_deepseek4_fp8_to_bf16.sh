#!/usr/bin/env bash
# MindSpeed-LLM's ckpt_dequant_deepseek4_fp8_to_bf16.sh, with ckptbeam: the FP8 + MXFP4 release of DeepSeek-V4 to a
# bf16 copy, file for file (config.json without quantization_config, the index with its true total_size). Not needed
# before hf2mcore, which reads the release directly.
#   FP8_DIR, BF16_DIR: the folders; CKPTBEAM: the launcher; extra arguments are passed on.
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
FP8_DIR="${FP8_DIR:-./model_from_hf/deepseek4-flash}"
BF16_DIR="${BF16_DIR:-./model_from_hf/deepseek4-flash-bf16}"

"$CKPTBEAM" fp8-to-bf16 --load-dir "$FP8_DIR" --save-dir "$BF16_DIR" "$@"
