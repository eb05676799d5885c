# Sourced by the benchmark scripts (they set $here, the repository, and $dir, where models and outputs go).

# private_jar NAME: bin/ckptbeam runs a private copy of the built jar ($dir/NAME), so that a rebuild during a long
# benchmark cannot change what is measured; builds the jar first when there is none.
private_jar() {
  ls "$here"/pipelines/target/ckptbeam-pipelines-*-bundled.jar >/dev/null 2>&1 \
    || (cd "$here" && mvn -B -ntp -q package -DskipTests)
  mkdir -p "$dir"
  cp "$(ls "$here"/pipelines/target/ckptbeam-pipelines-*-bundled.jar | head -1)" "$dir/$1"
  export CKPTBEAM_JAR="$dir/$1"
  # the class-data-sharing archive a build records for its jar, recorded for the copy (bin/ckptbeam)
  rm -rf "$dir/class-archive-demo"
  CKPTBEAM_CDS=record "$here/bin/ckptbeam" demo --out "$dir/class-archive-demo" >/dev/null
  rm -rf "$dir/class-archive-demo"
}

# benchmark_model OUT GB: the DeepSeek-shaped benchmark model of about GB gigabytes, unless OUT already holds one:
# hidden 2048, 6 layers (2 dense) + 1 MTP layer, 8·GB experts of 2048 x 2048 (5 MoE layers x experts x 3 x 8 MiB).
benchmark_model() {
  local out="$1" gb="$2"
  [ -f "$out/model.safetensors.index.json" ] && return 0
  rm -rf "$out"
  "$here/bin/ckptbeam" make-tiny-model --out "$out" --hidden-size 2048 --experts $(( gb * 8 )) \
    --moe-intermediate-size 2048 --intermediate-size 8192 --layers 6 --first-k-dense 2 --mtp-layers 1 --heads 16 \
    --q-lora-rank 512 --kv-lora-rank 256 --qk-nope-head-dim 64 --qk-rope-head-dim 32 --v-head-dim 64 \
    --vocab-size 32000 --shards 8 >/dev/null
}

# drop_caches: the page cache emptied (when allowed: root), so that the next step reads its input from disk.
drop_caches() {
  sync
  echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
}
