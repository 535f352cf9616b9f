#!/usr/bin/env bash
# Runs on the GPU machine (the `device` tool's copy of the working tree): unpacks the CUDA build
# and the parity fixtures carried in dist/, then runs what is asked.
#   tools/gpu-session.sh parity            # dsocr parity in f32 and bf16 on every shared case
#   tools/gpu-session.sh bench [ARGS…]     # synth-weights (once) + dsocr bench on the release size
#   tools/gpu-session.sh kernels           # dsocr kernels-check (each kernel against its reference)
#   tools/gpu-session.sh profile           # GPU time per kernel over a window of decode launches (ncu)
#   tools/gpu-session.sh ncu-detail        # ncu's full sections (bandwidth, stalls, occupancy) for
#                                          # DETAIL_COUNT launches of the DETAIL_KERNELS regex
#   tools/gpu-session.sh save-cache        # pack the CubeCL caches into $OUT (carry them next time)
#                                          # and report each process's compile and tuning time
#   tools/gpu-session.sh serve [ARGS…]     # dsocr serve on the synthetic weights + tools/loadgen.py
#   tools/gpu-session.sh coldstart [ARGS…] # dsocr ocr on one page with an empty GPU cache, then warm
#                                          # (COLD_LEVELS autotune levels; COLD_BENCH=1: bench ARGS)
#   tools/gpu-session.sh ocr-pdf [ARGS…]   # dsocr ocr on dist/doc100.pdf with the synthetic weights
#                                          # (the parity tokenizer beside them: dist/tokenizer.json.xz
#                                          # or the parity fixtures), timed, ARGS appended
# PARITY_DTYPES (default "f32 bf16"), PARITY_TAG (output name suffix) and PARITY_ARGS (e.g.
# --rel-pos-kernel) adjust the parity run;
# the fixtures are whichever dist/parity*.tar.xz were carried, PARITY_SET picks the set (parity,
# the default, or parity-ocr2). SYNTH_ARCH=ocr2 makes the synthetic weights DeepSeek-OCR 2's
# (dist/synth-ocr2) for bench, ocr-pdf and serve.
# Results are written under $OUT.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
if [ ! -d dist/cubecl-cache ] && [ -f dist/cubecl-cache.tar.xz ]; then
  tar xJf dist/cubecl-cache.tar.xz -C dist
fi
if [ ! -x dist/dsocr ] || [ dist/dsocr.xz -nt dist/dsocr ]; then
  xz -dkf dist/dsocr.xz && chmod +x dist/dsocr
fi
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader | tee "$OUT/gpu.txt"
export DSOCR_CACHE_DIR=${DSOCR_CACHE_DIR:-$PWD/dist/cubecl-cache}
# The synthetic release-size weights, with the parity model's tokenizer beside them (the CLI's
# ocr and serve need one): dist/tokenizer.json.xz, or the carried parity fixtures.
SYNTH=dist/synth${SYNTH_ARCH:+-$SYNTH_ARCH}
synth() {
  [ -f $SYNTH/model.safetensors ] || dist/dsocr synth-weights --arch "${SYNTH_ARCH:-ocr}" --out $SYNTH 2>&1 | tail -2
}
synth_with_tokenizer() {
  synth
  if [ ! -f $SYNTH/tokenizer.json ]; then
    if [ -f dist/tokenizer.json.xz ]; then
      xz -dc dist/tokenizer.json.xz > $SYNTH/tokenizer.json
    else
      if [ ! -d dist/parity ]; then for t in dist/parity*.tar.xz; do tar xJf "$t" -C dist; done; fi
      cp dist/parity/model/tokenizer.json $SYNTH/
    fi
  fi
}
what=${1:-parity}; shift || true
case "$what" in
  parity)
    set_dir=dist/${PARITY_SET:-parity}
    if [ ! -d $set_dir ]; then for t in dist/parity*.tar.xz; do tar xJf "$t" -C dist; done; fi
    for dt in ${PARITY_DTYPES:-f32 bf16}; do
      name=parity-$dt${PARITY_TAG:-}
      /usr/bin/time -v dist/dsocr parity --model $set_dir/model --case $set_dir/cases --device cuda --dtype $dt ${PARITY_ARGS:-} \
        > "$OUT/$name.txt" 2> "$OUT/$name.err"; echo "$name exit $?" | tee -a "$OUT/$name.txt"
      tail -n 25 "$OUT/$name.err" | grep -E "Elapsed|Maximum resident" || true
      cat "$OUT/$name.txt"
    done
    ;;
  kernels)
    dist/dsocr kernels-check --device cuda 2>&1 | tee "$OUT/kernels-check.txt"
    ;;
  profile)
    # PROFILE_SKIP launches in (past vision, prefill and ~100 decode steps of the first pass),
    # then PROFILE_COUNT launches timed one by one on the GPU (clocks and caches left alone).
    # PROFILE_ARGS replaces the bench arguments; PROFILE_TAIL sums only the window's last
    # launches (with PROFILE_SKIP=0 and a large count: the end of the run, e.g. a batched decode).
    synth
    ncu --metrics gpu__time_duration.sum --csv --print-units base --clock-control none --cache-control none \
      --launch-skip "${PROFILE_SKIP:-20000}" --launch-count "${PROFILE_COUNT:-600}" \
      dist/dsocr bench --model $SYNTH --device cuda ${PROFILE_ARGS:---new-tokens 256 --batch 1} > "$OUT/ncu.csv" 2> "$OUT/ncu.err"
    echo "ncu exit $?"
    python3 tools/ncu_summary.py "$OUT/ncu.csv" "${PROFILE_STEPS:-0}" "${PROFILE_TAIL:-0}" | tee "$OUT/ncu-summary.txt"
    xz -T0 "$OUT/ncu.csv"
    ;;
  ncu-detail)
    # Full ncu sections (speed of light, memory, warp stalls, occupancy) for a few launches of
    # the kernels matching DETAIL_KERNELS (a regex), past DETAIL_SKIP of those launches.
    synth
    ncu --kernel-name "regex:${DETAIL_KERNELS:-swiglu}" --launch-skip "${DETAIL_SKIP:-2000}" --launch-count "${DETAIL_COUNT:-4}" \
      --section SpeedOfLight --section MemoryWorkloadAnalysis --section WarpStateStats --section Occupancy \
      --section LaunchStats --section SchedulerStats --clock-control none \
      dist/dsocr bench --model $SYNTH --device cuda ${PROFILE_ARGS:---new-tokens 256 --batch 1} > "$OUT/ncu-detail.txt" 2> "$OUT/ncu-detail.err"
    echo "ncu exit $?"
    grep -E "^  [a-z_]+.*\(|Duration|DRAM Throughput|Memory Throughput|Achieved Occupancy|Registers Per|Block Size|Grid Size|Stall|L2 Hit|Mem Busy|Max Bandwidth|Theoretical Occ|Waves Per SM|Issued Warp|No Eligible" "$OUT/ncu-detail.txt" | head -200
    ;;
  ocr-pdf)
    # The user's path: a 100-page PDF through `dsocr ocr` (pages rendered and prepared on CPU
    # threads ahead of the engine). The synthetic weights get the parity model's tokenizer.
    synth_with_tokenizer
    name=${OCR_NAME:-ocr-pdf}
    SECONDS=0
    RUST_LOG=${RUST_LOG:-warn,dsocr=info,dsocr_engine=info} timeout "${BENCH_TIMEOUT:-500}" \
      dist/dsocr ocr "${OCR_PDF:-dist/doc100.pdf}" --model $SYNTH --device cuda "$@" > "$OUT/$name.md" 2> "$OUT/$name.err"
    echo "$name exit $? after $SECONDS s"
    grep -a -v "^\s*$" "$OUT/$name.err" | tail -8
    ;;
  coldstart)
    # Issue 24: `dsocr ocr` on one page in a fresh process, first with an empty GPU cache
    # directory, then again warm, for each autotune level of COLD_LEVELS (default "minimal");
    # then, when COLD_BENCH is set, `dsocr bench` (ARGS appended) on the cache that level left.
    synth_with_tokenizer
    page=${COLD_PAGE:-assets/sample-page.jpg}
    for level in ${COLD_LEVELS:-minimal}; do
      cache=dist/cold-cache-$level
      rm -rf "$cache"
      for run in cold warm; do
        name=coldstart-$level-$run
        SECONDS=0
        RUST_LOG=${RUST_LOG:-warn,dsocr=info,dsocr_engine=info,dsocr_core=info} /usr/bin/time -v timeout "${BENCH_TIMEOUT:-500}" \
          dist/dsocr ocr "$page" --model $SYNTH --device cuda --timings --max-new-tokens 256 --autotune "$level" \
          --gpu-cache-dir "$cache" --out "$OUT/$name" > "$OUT/$name.md" 2> "$OUT/$name.err"
        echo "$name exit $? after $SECONDS s"
        grep -a -E "model loaded|first run|tok/s|Elapsed|timings|vision|prefill" "$OUT/$name.err" | tail -8
      done
      du -sh "$cache"/*/* 2>/dev/null | tail -2
      # Where the cold process's compile and tuning time went.
      for db in "$cache"/*/*/default.db; do
        [ -f "$db" ] && python3 tools/cubecl_cache_report.py --keys "$db" | tee "$OUT/cache-report-$level.txt" | head -60
      done
      if [ -n "${COLD_BENCH:-}" ]; then
        timeout "${BENCH_TIMEOUT:-500}" dist/dsocr bench --model $SYNTH --device cuda --autotune "$level" --gpu-cache-dir "$cache" \
          --json-out "$OUT/bench-$level.json" "$@" > /dev/null 2> "$OUT/bench-$level.err"
        echo "bench-$level exit $?"
        python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ('load_s','load_host_s','load_upload_s')}); [print(w, {k: r[w][k] for k in ('tokens_per_s','decode_tokens_per_s','wall_s','cold_wall_s')}) for w in ('single','batch') if r.get(w)]" "$OUT/bench-$level.json"
      fi
    done
    ;;
  serve)
    # `dsocr serve` on the synthetic weights (ARGS appended), then tools/loadgen.py for each
    # "clients:requests" of LOADGEN_RUNS in turn (the first runs warm the kernels up), each
    # request one page (LOADGEN_IMAGE, default the bench's synthetic A4 page) with LOADGEN_TOKENS new tokens; then /metrics, and SIGTERM.
    synth_with_tokenizer
    RUST_LOG=${RUST_LOG:-warn,dsocr=info,dsocr_serve=info} dist/dsocr serve --model $SYNTH --device cuda --port 8000 "$@" \
      > "$OUT/serve.log" 2>&1 &
    pid=$!
    SECONDS=0
    until python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/health')" 2>/dev/null; do
      if ! kill -0 $pid 2>/dev/null || [ $SECONDS -gt 300 ]; then echo "server not ready after $SECONDS s"; tail -20 "$OUT/serve.log"; exit 1; fi
      sleep 1
    done
    echo "ready after $SECONDS s"
    i=0
    for spec in ${LOADGEN_RUNS:-1:2 64:1 1:5 64:2}; do
      i=$((i+1))
      timeout "${LOADGEN_TIMEOUT:-300}" python3 tools/loadgen.py ${LOADGEN_IMAGE:+--image "$LOADGEN_IMAGE"} \
        --clients "${spec%%:*}" --requests "${spec##*:}" --max-tokens "${LOADGEN_TOKENS:-256}" > "$OUT/loadgen-$i.json"
      echo "run $i ($spec) exit $?"; python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print({k: r[k] for k in ('clients','requests','error_count','wall_s','tokens_per_s','ttft_min_s','ttft_p50_s','latency_p50_s')})" "$OUT/loadgen-$i.json"
    done
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8000/metrics').read().decode())" > "$OUT/metrics.txt"
    kill -TERM $pid; wait $pid; echo "server exit $?"
    grep -a -v "^\s*$" "$OUT/serve.log" | tail -5
    ;;
  save-cache)
    tar cJf "$OUT/cubecl-cache.tar.xz" -C dist cubecl-cache && ls -l "$OUT/cubecl-cache.tar.xz"
    # Where each process's compile and tuning time went (CubeCL's records in the cache).
    python3 tools/cubecl_cache_report.py "$OUT/cubecl-cache.tar.xz" | tee "$OUT/cache-report.txt" | head -60
    ;;
  bench)
    # BENCH_NAME names the outputs (a second process: BENCH_NAME=bench2); BENCH_TIMEOUT keeps the
    # command inside the device tool's 600 s limit so the partial JSON and logs still come back.
    name=${BENCH_NAME:-bench}
    synth
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 200 > "$OUT/$name-gpu-mem.csv" &
    smi=$!
    SECONDS=0
    RUST_LOG=${RUST_LOG:-warn,dsocr=info,dsocr_cli=info,dsocr_lm=info,dsocr_core=info} timeout "${BENCH_TIMEOUT:-500}" \
      dist/dsocr bench --model $SYNTH --device cuda "$@" --json-out "$OUT/$name.json" > /dev/null 2> "$OUT/$name.err"
    echo "$name exit $? after $SECONDS s"
    kill $smi
    echo "peak nvidia-smi memory.used MiB: $(sort -n "$OUT/$name-gpu-mem.csv" | tail -1)"
    if [ "$(stat -c %s "$OUT/$name.err")" -gt 8000000 ]; then
      { head -c 3000000 "$OUT/$name.err"; echo; echo "[… trimmed …]"; tail -c 3000000 "$OUT/$name.err"; } > "$OUT/$name.err.trim"
      mv "$OUT/$name.err.trim" "$OUT/$name.err"
    fi
    grep -a "bench:" "$OUT/$name.err" | tail -20
    cat "$OUT/$name.json" 2>/dev/null
    ;;
esac
