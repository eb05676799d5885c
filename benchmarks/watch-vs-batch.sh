#!/usr/bin/env bash
# Watch against batch, same checkpoint and layout: is a checkpoint dropped into a watched folder converted as fast as
# the batch command converts it (its target files fanned out over the workers)? Usage:
#   benchmarks/watch-vs-batch.sh [--dir DIR] [--size GB]   (default /tmp/ckptbeam-bench, 8)
# For each runner (DirectRunner with 2 workers, Flink [local] with parallelism 2) it times the batch hf2mcore
# (tp2 pp2 ep4, grouped GEMM, MTP) by its own report ("in N s": checks, planning, writing, commit; no JVM start), then
# drops a hard-linked copy of the model into a watched folder and takes the watch's conversion time from the status
# record (end - start: planning, writing, commit). Page caches are dropped before each run when allowed.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=/tmp/ckptbeam-bench
gb=8
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --size) gb="$2"; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
source "$here/benchmarks/common.sh"
private_jar ckptbeam-watch.jar
ckpt="$here/bin/ckptbeam"
hf="$dir/hf-$gb"
benchmark_model "$hf" "$gb"
layout=(--target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --target-expert-parallel-size 4
  --moe-grouped-gemm --mtp-num-layers 1)
printf '%-22s %10s %10s %7s\n' runner "batch s" "watch s" ratio
for runner in direct flink; do
  beam=()
  [ "$runner" = flink ] && beam=(--runner=FlinkRunner --flinkMaster=[local] --parallelism=2)
  rm -rf "$dir/batch-out" "$dir/watch-in" "$dir/watch-out"
  drop_caches
  batch=$(JAVA_OPTS="${JAVA_OPTS:--Xmx1g}" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/batch-out" "${layout[@]}" \
    "${beam[@]}" | sed -n 's/.* in \([0-9.]*\) s .*/\1/p')
  mkdir -p "$dir/watch-in"
  cp -al "$hf" "$dir/watch-in/ck"
  drop_caches
  JAVA_OPTS="${JAVA_OPTS:--Xmx1g}" "$ckpt" watch --direction hf2mcore --input-pattern "$dir/watch-in/*" \
    --save-root "$dir/watch-out" --poll-interval 1 --stop-after-idle 10 "${layout[@]}" "${beam[@]}" > "$dir/watch.log"
  watch=$(python3 -c 'import json,sys,datetime as d; s=json.load(open(sys.argv[1])); f=lambda t: d.datetime.fromisoformat(t.replace("Z","+00:00")); print("%.1f" % (f(s["end"])-f(s["start"])).total_seconds())' "$dir/watch-out/ck.ckptbeam-status.json")
  cmp -s "$dir/batch-out/iter_0000001/mp_rank_01_001_003/model_optim_rng.pt" \
    "$dir/watch-out/ck/iter_0000001/mp_rank_01_001_003/model_optim_rng.pt" || { echo "watch output differs" >&2; exit 1; }
  printf '%-22s %10s %10s %7s\n' "$runner" "$batch" "$watch" "$(python3 -c "print('%.2f' % ($watch / $batch))")"
done
rm -rf "$dir/batch-out" "$dir/watch-in" "$dir/watch-out"
