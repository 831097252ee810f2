#!/usr/bin/env bash
# One device call that verifies a commit: every GPU test, compute-sanitizer on small shapes (forward
# and training kernels), correctness and CUPTI times of every shapes.json shape against the reference
# and cuBLASLt, the training kernel's check and times, host time and the activation cast.
# Logs under $OUT; short summaries printed. The whole script took 333-479 s on an H200 on 2026-11-29
# (pytest -m gpu 186-288 s of it, by host); the per-step timeouts are caps against a hang, not a budget.
#
# Run it on a clean checkout of the commit, not a working tree other people are editing:
#   git worktree add --detach build/head HEAD      # build/ is ignored; carry it with the call
#   (device) cd build/head && bash tools/final_check.sh [tests|perf]
# `tests`: pytest -m gpu and the sanitizers only; `perf`: perf_check, training_check and
# host_cast_check only; no argument: both. NOTES: on the slow host of 2026-11-30 (tenth session) the
# whole script passed a call's 600 s inside pytest (308 of 325 tests run): give each half a call.
export PYTHONPATH=. PYTHONUNBUFFERED=1 FP8GEMM_CACHE_DIR=/tmp/fp8c
OUT=${OUT:-final_out}; mkdir -p "$OUT"
# NOTES: the device tool brings back at most 8 files from $OUT (the 2026-11-30 run lost
# training_check.log to a ninth): pytest_gpu.log, sanitizers.log, perf_check.{json,txt},
# training_check.{log,json}, host_cast.{log,json}. Progress logs stay in /tmp unless a step fails.
# Baselines: the newest docs/bench/perf_check_*.json and training_check_*.json, if any; shapes more
# than 5% slower than there are listed (tools/bench_compare.py).
# The newest baseline: files named <tool>_<date>_s<session>_<commit>.json, by date then session;
# the older names (no session number) only where there is none of those.
newest() {
  { ls docs/bench/$1_*_s[0-9]*_*.json 2>/dev/null || ls docs/bench/$1_*.json 2>/dev/null; } | sort -V | tail -1
}
PART=${1:-all}
if [ "$PART" != perf ]; then
timeout 340 python3 -m pytest -m gpu -q -p no:cacheprovider -rfE tests > "$OUT/pytest_gpu.log" 2>&1
echo "pytest -m gpu rc=$?: $(tail -1 "$OUT/pytest_gpu.log")"
grep -E "^FAILED|^ERROR" "$OUT/pytest_gpu.log" | head -20
# NOTES: racecheck is the slowest; on 2026-11-29 it was cut at 60 s (6f89149) and at 90 s (e86fbb5,
# after the ring-round cases were added) before printing its summary, and on 2026-11-30 at 140 s
# (61b6adf: it needed ~145 s alone). The whole script then took 572 s of a call's 600, pytest -m gpu
# cut at 330 s after its last test: run the sanitizers in a call of their own if a host is slower.
: > "$OUT/sanitizers.log"
for tool in memcheck racecheck synccheck; do
  timeout $([ $tool = racecheck ] && echo 165 || echo 90) compute-sanitizer --tool $tool --report-api-errors no --error-exitcode 9 \
    python3 tools/sanitize_check.py > /tmp/sanitizer_$tool.log 2>&1
  rc=$?
  { echo "==== $tool rc=$rc"; grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|worst' /tmp/sanitizer_$tool.log
    [ $rc = 0 ] || tail -60 /tmp/sanitizer_$tool.log; } >> "$OUT/sanitizers.log"
  echo "compute-sanitizer $tool rc=$rc: $(grep -E 'ERROR SUMMARY|RACECHECK SUMMARY|worst' /tmp/sanitizer_$tool.log | tr '\n' ' ')"
done
fi
[ "$PART" = tests ] && exit 0
base=$(newest perf_check)
timeout 150 python3 tools/perf_check.py --no-check --out "$OUT" ${base:+--baseline "$base"} > /tmp/perf_check.log 2>&1
rc=$?; echo "perf_check rc=$rc"; [ $rc = 0 ] || tail -40 /tmp/perf_check.log
# The comparison lists every shape, then the ones over 5% slower again: print that list once.
slower_block() { awk '/^slower than the baseline:/{f=1} /failures$/{f=0} f' "$1"; }
grep -E "geomean|failures|^against" "$OUT/perf_check.txt"; slower_block "$OUT/perf_check.txt"
base=$(newest training_check)
timeout 90 python3 tools/training_check.py --json "$OUT/training_check.json" ${base:+--baseline "$base"} \
  > "$OUT/training_check.log" 2>&1
rc=$?; echo "training_check rc=$rc"; grep -E "failures|^(dense|k-grouped) |^against" "$OUT/training_check.log" | grep -v -- "->"
slower_block "$OUT/training_check.log"
[ $rc = 0 ] || tail -20 "$OUT/training_check.log"
timeout 60 python3 tools/host_cast_check.py --json "$OUT/host_cast.json" > "$OUT/host_cast.log" 2>&1
echo "host_cast_check rc=$?"; tail -12 "$OUT/host_cast.log"
