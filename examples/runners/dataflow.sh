#!/usr/bin/env bash
# hf2mcore on Dataflow, gs:// to gs://, the layout of MindSpeed's shipped DeepSeek-V3 script. Each worker streams
# its target files from ranged reads of the shards into resumable uploads: standard machines, default disks.
#   PROJECT, REGION, BUCKET (required); extra arguments are passed on (e.g. --templateLocation=FILE to only write
#   the job spec, --maxNumWorkers=N).
set -euo pipefail
CKPTBEAM="${CKPTBEAM:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/bin/ckptbeam}"
PROJECT="${PROJECT:?the Google Cloud project}"
REGION="${REGION:?the Dataflow region}"
BUCKET="${BUCKET:?the bucket holding DeepSeek-V3-bf16/}"

"$CKPTBEAM" hf2mcore --load-dir "gs://$BUCKET/DeepSeek-V3-bf16" --save-dir "gs://$BUCKET/deepseek3-mcore" \
  --moe-grouped-gemm --target-tensor-parallel-size 2 --target-pipeline-parallel-size 8 \
  --target-expert-parallel-size 32 --num-layers 64 --mtp-num-layers 1 --num-layers-per-virtual-pipeline-stage 2 \
  --noop-layers 47,62,63 \
  --runner=DataflowRunner --project="$PROJECT" --region="$REGION" --tempLocation="gs://$BUCKET/tmp" \
  --workerMachineType=n2-standard-4 --diskSizeGb=50 --maxNumWorkers=64 --gcsUploadBufferSizeBytes=67108864 \
  "$@"
