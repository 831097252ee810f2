#!/usr/bin/env bash
# One device call: every GPU test, the bench, compute-sanitizer on small shapes.
# Logs under $OUT; short summaries printed.
export PYTHONPATH=. PYTHONUNBUFFERED=1 FP8GEMM_CACHE_DIR=/tmp/fp8c
OUT=${OUT:-final_out}; mkdir -p "$OUT"
timeout 170 python3 -m pytest -m gpu -q -s -p no:cacheprovider tests > "$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu rc=$?: $(tail -1 "$OUT/pytest_gpu.log")"
grep -E "^FAILED|^ERROR|host time|host launch" "$OUT/pytest_gpu.log" | head -10
timeout 90 python3 -m fp8gemm bench --out "$OUT" > "$OUT/bench.log" 2>&1
grep -E "^dense|^conti|^maske|geomean" "$OUT/bench.log" | cut -c1-100
for tool in memcheck racecheck synccheck; do
  timeout 40 compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 \
    python3 tools/sanitize_check.py > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|worst' "$OUT/sanitizer_$tool.log" | tr '\n' ' ')"
done
