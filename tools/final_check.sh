#!/usr/bin/env bash
# One device call: every GPU test, compute-sanitizer on small shapes, the JIT self-test, the bench.
# Logs under $OUT; short summaries printed, the bench table last.
export PYTHONPATH=. PYTHONUNBUFFERED=1 FP8GEMM_CACHE_DIR=/tmp/fp8c
OUT=${OUT:-final_out}; mkdir -p "$OUT"
timeout 200 python3 -m pytest -m gpu -q -s -p no:cacheprovider tests > "$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu rc=$?: $(tail -1 "$OUT/pytest_gpu.log")"
grep -E "^FAILED|^ERROR|host time|host launch" "$OUT/pytest_gpu.log" | head -10
for tool in memcheck racecheck synccheck; do
  timeout 60 compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 \
    python3 tools/sanitize_check.py > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|worst' "$OUT/sanitizer_$tool.log" | tr '\n' ' ')"
done
timeout 60 python3 -m fp8gemm.jit.selftest 2>&1 | grep -E "cold|warm|overhead"
timeout 120 python3 -m fp8gemm bench --out "$OUT" 2>&1 | grep -v "^\[" | cut -c1-125
