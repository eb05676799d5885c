#!/usr/bin/env bash
# hf2mcore on a Flink 1.19 session cluster: starts a local one (1 JobManager, 2 TaskManagers) unless FLINK_MASTER
# names a running cluster, submits with the -flinkjob jar staged, and stops the local cluster at the end. Paths must
# be visible to every TaskManager (a shared file system, or gs:// with the -bundled jar staged instead).
#   HF_DIR, MCORE_DIR, FLINK_MASTER (host:port), PARALLELISM; extra arguments are passed on (layout flags, ...).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CKPTBEAM="${CKPTBEAM:-$repo/bin/ckptbeam}"
HF_DIR="${HF_DIR:?the HF checkpoint folder}"
MCORE_DIR="${MCORE_DIR:?the output folder}"
jar="$(ls "$repo"/pipelines/target/ckptbeam-pipelines-*-flinkjob.jar | head -1)"
if [ -z "${FLINK_MASTER:-}" ]; then
  "$repo/scripts/local-flink-cluster.sh" start
  trap '"$repo/scripts/local-flink-cluster.sh" stop' EXIT
  FLINK_MASTER="localhost:${FLINK_REST_PORT:-8081}"
fi

"$CKPTBEAM" hf2mcore --load-dir "$HF_DIR" --save-dir "$MCORE_DIR" \
  --runner=FlinkRunner --flinkMaster="$FLINK_MASTER" --parallelism="${PARALLELISM:-2}" --filesToStage="$jar" \
  "$@"
