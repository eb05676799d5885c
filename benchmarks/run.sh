#!/usr/bin/env bash
# End-to-end benchmark: conversion speed against a plain copy of the same bytes, and peak memory with a 256 MB heap,
# at two model sizes, with the page cache dropped and warm. Usage:
#   benchmarks/run.sh [--dir DIR] [--sizes "4 8"] [--caches "cold warm"] [--real-dims] [--no-flink] [--keep]
#   --dir       where models and outputs go (default: /tmp/ckptbeam-bench); needs about 5x the largest size free
#   --sizes     model sizes in GB, approximately (default "4 8"; the 8 GB model's grouped weight1 is 1 GiB at ep 1)
#   --caches    "cold": caches dropped before each step (every step reads its input from disk); "warm": the step's
#               input is read into the page cache first; default both, one table each
#   --real-dims the model has DeepSeek-V3's real matrix sizes (hidden 7168, moe_intermediate 2048, 128 heads, ...),
#               about 3 GB per 16 experts of --sizes; grouped GEMM transposes 2048 x 7168 windows there
#   --no-flink  skip the Flink [local] runs
# BENCH_FLINK_CLUSTER=1 adds a run on a real local Flink session cluster (scripts/local-flink-cluster.sh: 1 JobManager,
# 2 TaskManagers; its RSS column is the submitting client's only).
# Prints one table per size: seconds, ratio to `cp -r`, MB/s written, peak RSS. Page caches are dropped before each
# step when allowed (root), so every step reads its input from disk. Do not rebuild the jar while it runs.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=/tmp/ckptbeam-bench
sizes="4 8"
caches="cold warm"
real_dims=0
flink=1
keep=0
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --sizes) sizes="$2"; shift 2 ;;
    --caches) caches="$2"; shift 2 ;;
    --real-dims) real_dims=1; shift ;;
    --no-flink) flink=0; shift ;;
    --keep) keep=1; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 2; }
source "$here/benchmarks/common.sh"
ckpt="$here/bin/ckptbeam"
private_jar ckptbeam.jar
heap="${BENCH_HEAP:--Xmx256m}"

# run LABEL OUT IN CMD...: time, peak RSS and output size of one command, appended to the results; OUT is removed after
# measuring unless it is needed later (KEEP_OUT=1). Cold: caches dropped first; warm: IN is read into the cache first.
run() {
  local label="$1" out="$2" in="$3"; shift 3
  local log="$dir/$label.time"
  drop_caches
  if [ "$cache" = warm ]; then
    find "$in" -type f -exec cat {} + > /dev/null
  fi
  /usr/bin/time -v -o "$log" "$@" > "$dir/$label.out" 2>&1 || { echo "$label failed:"; tail -5 "$dir/$label.out"; exit 1; }
  local secs rss bytes
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$log")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%d", $2/1024}' "$log")
  bytes=$(du -sb "$out" | cut -f1)
  echo "$label $secs $rss $bytes" >> "$dir/results"
  [ "${KEEP_OUT:-0}" = 1 ] || rm -rf "$out"
}

bytes_of() { du -sb "$1" | cut -f1; }

for gb in $sizes; do
  if [ "$real_dims" = 1 ]; then
    # DeepSeek-V3's real dimensions: 2 MoE layers x experts x 3 x 7168 x 2048 x 2 bytes + 18432-wide dense parts
    experts=$(( gb * 16 / 3 / 8 * 8 )); [ "$experts" -ge 8 ] || experts=8
    hf="$dir/hf-real-$gb"
    model_args=(--hidden-size 7168 --moe-intermediate-size 2048 --experts "$experts" --layers 2 --first-k-dense 0
      --intermediate-size 18432 --heads 128 --q-lora-rank 1536 --kv-lora-rank 512 --qk-nope-head-dim 128
      --qk-rope-head-dim 64 --v-head-dim 128 --vocab-size 32000 --mtp-layers 0 --shards 4)
    if [ ! -f "$hf/model.safetensors.index.json" ]; then
      rm -rf "$hf"
      "$ckpt" make-tiny-model --out "$hf" "${model_args[@]}" >/dev/null
    fi
    mtp=0
  else
    hf="$dir/hf-$gb"
    benchmark_model "$hf" "$gb"
    mtp=1
  fi
  in_bytes=$(bytes_of "$hf")
  for cache in $caches; do
    rm -f "$dir/results"
    layout="--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --target-expert-parallel-size 4 --moe-grouped-gemm --mtp-num-layers $mtp"
    run "cp" "$dir/copy-$gb" "$hf" cp -r "$hf" "$dir/copy-$gb"
    JAVA_OPTS="$heap" KEEP_OUT=1 run "hf2mcore-tp1pp1ep1" "$dir/mc1-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc1-$gb" --mtp-num-layers $mtp
    JAVA_OPTS="$heap" run "mcore2hf-tp1pp1ep1" "$dir/back-$gb" "$dir/mc1-$gb" "$ckpt" mcore2hf --load-dir "$dir/mc1-$gb" --save-dir "$dir/back-$gb" --mtp-num-layers $mtp
    rm -rf "$dir/mc1-$gb"
    # shellcheck disable=SC2086
    JAVA_OPTS="$heap" KEEP_OUT=1 run "hf2mcore-tp2pp2ep4-grouped" "$dir/mc16-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc16-$gb" $layout
    # shellcheck disable=SC2086
    JAVA_OPTS="$heap" run "mcore2hf-from-grouped" "$dir/back-$gb" "$dir/mc16-$gb" "$ckpt" mcore2hf --load-dir "$dir/mc16-$gb" --save-dir "$dir/back-$gb" ${layout//--target-/--source-}
    rm -rf "$dir/mc16-$gb"
    # shellcheck disable=SC2086
    JAVA_OPTS="$heap" run "hf2mcore-tp2pp2ep4-grouped-direct-p1" "$dir/mc16-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc16-$gb" $layout --targetParallelism=1
    if [ "$flink" = 1 ]; then
      # shellcheck disable=SC2086
      JAVA_OPTS="${BENCH_FLINK_HEAP:--Xmx1g}" run "hf2mcore-tp2pp2ep4-grouped-flink-p2" "$dir/mc16-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc16-$gb" $layout \
        --runner=FlinkRunner --flinkMaster=[local] --parallelism=2
      # shellcheck disable=SC2086
      JAVA_OPTS="${BENCH_FLINK_HEAP:--Xmx1g}" run "hf2mcore-tp2pp2ep4-grouped-flink-p1" "$dir/mc16-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc16-$gb" $layout \
        --runner=FlinkRunner --flinkMaster=[local] --parallelism=1
    fi
    if [ "${BENCH_FLINK_CLUSTER:-0}" = 1 ]; then
      export FLINK_CLUSTER_DIR="$dir/flink-cluster" FLINK_REST_PORT="${FLINK_REST_PORT:-8081}"
      "$here/scripts/local-flink-cluster.sh" start >/dev/null
      cp "$(ls "$here"/pipelines/target/ckptbeam-pipelines-*-flinkjob.jar | head -1)" "$dir/flinkjob.jar"
      # shellcheck disable=SC2086
      JAVA_OPTS="${BENCH_FLINK_HEAP:--Xmx1g}" run "hf2mcore-tp2pp2ep4-grouped-flink-cluster" "$dir/mc16-$gb" "$hf" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mc16-$gb" $layout \
        --runner=FlinkRunner --flinkMaster=localhost:$FLINK_REST_PORT --parallelism=2 --filesToStage="$dir/flinkjob.jar"
      "$here/scripts/local-flink-cluster.sh" stop >/dev/null
    fi
    mapfile -t results < "$dir/results"
    cp_secs=$(echo "${results[0]}" | cut -d' ' -f2)
    echo
    echo "model ~${gb} GB$([ "$real_dims" = 1 ] && echo ", DeepSeek-V3's real matrix sizes, $experts experts"): $(numfmt --to=iec "$in_bytes") of safetensors; page cache $cache; heap $heap (Flink runs: ${BENCH_FLINK_HEAP:--Xmx1g})"
    printf "%-40s %9s %9s %10s %9s\n" "step" "seconds" "x cp" "MB/s out" "RSS MB"
    for r in "${results[@]}"; do
      set -- $r
      printf "%-40s %9.1f %9.2f %10.0f %9s\n" "$1" "$2" "$(echo "$2 / $cp_secs" | bc -l)" "$(echo "$4 / 1000000 / $2" | bc -l)" "$3"
    done
  done
  [ "$keep" = 1 ] || rm -rf "$hf"
done
