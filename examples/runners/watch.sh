#!/usr/bin/env bash
# Streaming: every HF checkpoint folder that lands under INCOMING (a local folder or gs:// prefix) is converted,
# once, when complete, into SAVE_ROOT/NAME with the shipped DeepSeek-V3 layout; its target files fan out over the
# workers. Runs until stopped, or --stop-after-idle SECONDS; add --notifications projects/P/subscriptions/S to react
# to Cloud Storage notifications instead of polling, and Beam flags for Flink or Dataflow.
#   INCOMING, SAVE_ROOT (required); extra arguments are passed on.
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
INCOMING="${INCOMING:?the folder or gs:// prefix to watch}"
SAVE_ROOT="${SAVE_ROOT:?where the conversions go}"

"$CKPTBEAM" watch --direction hf2mcore --input-pattern "${INCOMING%/}/*/" --save-root "$SAVE_ROOT" \
  --poll-interval 10 \
  --moe-grouped-gemm --target-tensor-parallel-size 2 --target-pipeline-parallel-size 8 \
  --target-expert-parallel-size 32 --num-layers 64 --mtp-num-layers 1 --num-layers-per-virtual-pipeline-stage 2 \
  --noop-layers 47,62,63 \
  "$@"
