#!/usr/bin/env bash
# One device call: every GPU test, compute-sanitizer on small shapes, the issue-6 figures, the bench.
# Logs under $OUT; short summaries printed.
export PYTHONPATH=. PYTHONUNBUFFERED=1 FP8GEMM_CACHE_DIR=/tmp/fp8c
OUT=${OUT:-final_out}; mkdir -p "$OUT"
timeout 200 python3 -m pytest -m gpu -q -p no:cacheprovider tests > "$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu rc=$?: $(tail -1 "$OUT/pytest_gpu.log")"
grep -E "^FAILED|^ERROR" "$OUT/pytest_gpu.log" | head -10
for tool in memcheck racecheck synccheck; do
  timeout 90 compute-sanitizer --tool $tool --error-exitcode 9 python3 tools/sanitize_check.py > "$OUT/sanitizer_$tool.log" 2>&1
  echo "compute-sanitizer $tool rc=$?: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|worst diff' "$OUT/sanitizer_$tool.log" | tr '\n' ' ')"
done
timeout 150 python3 tools/integration_check.py > "$OUT/integration.log" 2>&1
echo "integration rc=$?"; tail -30 "$OUT/integration.log"
