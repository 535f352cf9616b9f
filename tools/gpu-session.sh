#!/usr/bin/env bash
# Runs on the GPU machine (the `device` tool's copy of the working tree): unpacks the CUDA build
# and the parity fixtures carried in dist/, then runs what is asked.
#   tools/gpu-session.sh parity            # dsocr parity in f32 and bf16 on every shared case
#   tools/gpu-session.sh bench [ARGS…]     # synth-weights (once) + dsocr bench on the release size
# Results are written under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ ! -x dist/dsocr ] || [ dist/dsocr.xz -nt dist/dsocr ]; then
  xz -dkf dist/dsocr.xz && chmod +x dist/dsocr
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
export DSOCR_CACHE_DIR=${DSOCR_CACHE_DIR:-$PWD/dist/cubecl-cache}
what=${1:-parity}; shift || true
case "$what" in
  parity)
    if [ ! -d dist/parity ]; then for t in dist/parity*.tar.xz; do tar xJf "$t" -C dist; done; fi
    for dt in f32 bf16; do
      /usr/bin/time -v dist/dsocr parity --model dist/parity/model --case dist/parity/cases --device cuda --dtype $dt \
        > "$OUT/parity-$dt.txt" 2> "$OUT/parity-$dt.err"; echo "parity $dt exit $?" | tee -a "$OUT/parity-$dt.txt"
      tail -n 25 "$OUT/parity-$dt.err" | grep -E "Elapsed|Maximum resident" || true
    done
    cat "$OUT"/parity-*.txt
    ;;
  bench)
    [ -f dist/synth/model.safetensors ] || dist/dsocr synth-weights --out dist/synth 2>&1 | tail -2
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/gpu-mem.csv" &
    smi=$!
    RUST_LOG=${RUST_LOG:-info} dist/dsocr bench --model dist/synth --device cuda "$@" --json-out "$OUT/bench.json" 2> "$OUT/bench.err"
    echo "bench exit $?"
    kill $smi
    echo "peak nvidia-smi memory.used MiB: $(sort -n "$OUT/gpu-mem.csv" | tail -1)"
    tail -5 "$OUT/bench.err"
    ;;
esac
