#!/usr/bin/env bash
# mcore2mcore against mcore2hf + hf2mcore of the same pair, same run: tp2 pp2 ep4 grouped -> tp1 pp3 ep8 on the
# benchmark model (benchmarks/run.sh's, default 8 GB). Page caches dropped before each step when allowed.
#   benchmarks/mcore2mcore-vs-two-pass.sh [--dir DIR] [--size GB]
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
private_jar ckptbeam-m2m.jar
export JAVA_OPTS="${JAVA_OPTS:--Xmx256m}"
ckpt="$here/bin/ckptbeam"
hf="$dir/hf-$gb"
benchmark_model "$hf" "$gb"
src="$dir/m2m-source"
[ -f "$src/latest_checkpointed_iteration.txt" ] || "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$src" --quiet \
  --target-tensor-parallel-size 2 --target-pipeline-parallel-size 2 --target-expert-parallel-size 4 \
  --moe-grouped-gemm --mtp-num-layers 1 > /dev/null 2>&1
secs() { local s e; drop_caches; s=$(date +%s.%N); "$@" > /dev/null 2>&1; e=$(date +%s.%N); python3 -c "print('%.1f' % ($e - $s))"; }
rm -rf "$dir/m2m-direct" "$dir/m2m-hf" "$dir/m2m-two"
one=$(secs "$ckpt" mcore2mcore --load-dir "$src" --save-dir "$dir/m2m-direct" --quiet --source-tensor-parallel-size 2 \
  --source-pipeline-parallel-size 2 --source-expert-parallel-size 4 --source-moe-grouped-gemm --mtp-num-layers 1 \
  --target-pipeline-parallel-size 3 --target-expert-parallel-size 8)
back=$(secs "$ckpt" mcore2hf --load-dir "$src" --save-dir "$dir/m2m-hf" --quiet --source-tensor-parallel-size 2 \
  --source-pipeline-parallel-size 2 --source-expert-parallel-size 4 --moe-grouped-gemm --mtp-num-layers 1)
fwd=$(secs "$ckpt" hf2mcore --load-dir "$dir/m2m-hf" --save-dir "$dir/m2m-two" --quiet \
  --target-pipeline-parallel-size 3 --target-expert-parallel-size 8 --mtp-num-layers 1)
diff -rq -x ckptbeam-manifest.json "$dir/m2m-direct" "$dir/m2m-two" && same=identical || same=DIFFERENT
echo "mcore2mcore $one s; mcore2hf $back s + hf2mcore $fwd s = $(python3 -c "print('%.1f' % ($back + $fwd))") s; ratio $(python3 -c "print('%.2f' % ($one / ($back + $fwd)))"); outputs $same"
rm -rf "$dir/m2m-direct" "$dir/m2m-hf" "$dir/m2m-two"
