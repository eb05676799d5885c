#!/usr/bin/env bash
# DeepSeek-V4-Flash at its real matrix sizes (hidden 4096, 64 heads of 512, q_lora 1024, o_lora 1024, 8 groups,
# experts of 2048, vocab 129280, hc 4, MTP) with 32 experts and 4 layers (about 11 GB bf16), issue #22's figures:
#   1. hf2mcore into the shipped layout scaled to the model (tp 1, pp 4, ep 4 grouped: 8 experts per rank file as
#      Flash's ep 32) and mcore2hf back, each against `cp -r` of the same model, alternating, caches dropped, peak RSS;
#   2. the FP8 + MXFP4 release of the same model into that layout in one pass vs fp8-to-bf16 then hf2mcore.
#   Every `cp -r` is timed with the `sync` after it: our writers' bytes are on the disk when the command ends (direct
#   I/O), cp's would still be in the page cache. hf2mcore writes 2.3x the model's bytes (the layout replicates attention
#   over the EP ranks), so its rank files are also copied with `cp -r`: the same bytes written, by a plain copy.
# Usage: benchmarks/v4-flash.sh [--dir DIR] [--rounds N] [--release-only | --bf16-only]; needs about 60 GB free in DIR
# (25 GB of rank files and their copy). Do not rebuild meanwhile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
dir=/tmp/ckptbeam-v4
rounds=2
bf16=1
release=1
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir="$2"; shift 2 ;;
    --rounds) rounds="$2"; shift 2 ;;
    --release-only) bf16=0; shift ;;
    --bf16-only) release=0; shift ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { echo "needs GNU time: apt-get install -y time" >&2; exit 2; }
source "$here/benchmarks/common.sh"
private_jar ckptbeam-v4.jar
ckpt="$here/bin/ckptbeam"
heap="${BENCH_HEAP:--Xmx256m}"
dims=(--v4 --hidden-size 4096 --heads 64 --head-dim 512 --q-lora-rank 1024 --o-lora-rank 1024 --o-groups 8
  --qk-rope-head-dim 64 --index-heads 64 --index-head-dim 128 --moe-intermediate-size 2048 --vocab-size 129280
  --hc-mult 4 --experts 32 --layers 4 --mtp-layers 1 --hash-layers 3 --shards 6)
layout=(--target-tensor-parallel-size 1 --target-pipeline-parallel-size 4 --target-expert-parallel-size 4
  --expert-tensor-parallel-size 1 --moe-grouped-gemm --mtp-num-layers 1 --model-type-hf deepseek4)

# timed LABEL CMD...: seconds and peak RSS (MB) of one command, caches dropped first
timed() {
  local label="$1"; shift
  drop_caches
  JAVA_OPTS="$heap" /usr/bin/time -v -o "$dir/$label.time" "$@" > "$dir/$label.out" 2>&1 \
    || { echo "$label failed:"; tail -5 "$dir/$label.out"; exit 1; }
  local secs rss
  secs=$(awk -F': ' '/Elapsed \(wall clock\)/ {n=split($2,t,":"); s=0; for(i=1;i<=n;i++) s=s*60+t[i]; print s}' "$dir/$label.time")
  rss=$(awk -F': ' '/Maximum resident set size/ {printf "%d", $2/1024}' "$dir/$label.time")
  printf "%-34s %8.1f s %8s MB\n" "$label" "$secs" "$rss"
}

# copy_synced FROM TO, as a command for `timed`: cp -r, then sync (a plain copy until its bytes are on the disk)
copy_synced=(bash -c 'cp -r "$1" "$2" && sync' copy_synced)

hf="$dir/flash-bf16"
[ "$bf16" = 1 ] || rounds_bf16=0
[ "$bf16" = 0 ] || rounds_bf16="$rounds"
[ "$bf16" = 0 ] || [ -f "$hf/model.safetensors.index.json" ] || { rm -rf "$hf"; "$ckpt" make-tiny-model --out "$hf" "${dims[@]}" >/dev/null; }
[ "$bf16" = 0 ] || echo "model: $(du -sh "$hf" | cut -f1) bf16 safetensors; heap $heap"
for round in $(seq "$rounds_bf16"); do
  timed "cp-r.$round" "${copy_synced[@]}" "$hf" "$dir/copy"; rm -rf "$dir/copy"
  timed "hf2mcore.$round" "$ckpt" hf2mcore --load-dir "$hf" --save-dir "$dir/mcore" --quiet "${layout[@]}"
  echo "  (rank files: $(du -sh "$dir/mcore" | cut -f1))"
  timed "cp-r-rank-files.$round" "${copy_synced[@]}" "$dir/mcore" "$dir/copy"; rm -rf "$dir/copy"
  timed "cp-r-again.$round" "${copy_synced[@]}" "$hf" "$dir/copy"; rm -rf "$dir/copy"
  timed "mcore2hf.$round" "$ckpt" mcore2hf --load-dir "$dir/mcore" --save-dir "$dir/back" --quiet
  rm -rf "$dir/mcore" "$dir/back"
done
rm -rf "$hf"
[ "$release" = 1 ] || exit 0

release="$dir/flash-release"
[ -f "$release/model.safetensors.index.json" ] || { rm -rf "$release"; "$ckpt" make-tiny-model --out "$release" "${dims[@]}" --fp8 >/dev/null; }
echo "release: $(du -sh "$release" | cut -f1) FP8 + MXFP4 safetensors"
for round in $(seq "$rounds"); do
  timed "one-pass.$round" "$ckpt" hf2mcore --load-dir "$release" --save-dir "$dir/direct" --quiet "${layout[@]}"
  rm -rf "$dir/direct"
  timed "fp8-to-bf16.$round" "$ckpt" fp8-to-bf16 --load-dir "$release" --save-dir "$dir/bf16" --quiet
  timed "then-hf2mcore.$round" "$ckpt" hf2mcore --load-dir "$dir/bf16" --save-dir "$dir/two" --quiet "${layout[@]}"
  rm -rf "$dir/bf16" "$dir/two"
done
