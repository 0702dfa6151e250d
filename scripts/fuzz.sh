#!/usr/bin/env bash
# Builds the libFuzzer targets with clang in build-fuzz/ and runs each one.
#   scripts/fuzz.sh --smoke      20 s per target (CI)
#   scripts/fuzz.sh [SECONDS]    longer runs; new inputs are added to fuzz/corpus/
# Crashes are written to build-fuzz/crashes/ and fail the script.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=300
[ "${1:-}" = "--smoke" ] && seconds=20
[[ "${1:-}" =~ ^[0-9]+$ ]] && seconds=$1

CC=clang CXX=clang++ cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DOFFCORE_FUZZ=ON -DOFFCORE_TESTS=OFF >/dev/null
cmake --build build-fuzz -j2 --target fuzz_targets
mkdir -p build-fuzz/crashes

# One target. New inputs go to a scratch dir; the repo corpus is only read,
# so CI leaves the checkout clean. Long local runs merge them in afterwards.
# Prints its lines at the end, in one piece (two targets run at once).
run_one() {
  local target=$1 corpus=fuzz/corpus/${1%_fuzz} log=build-fuzz/crashes/$1.log work rc=0
  mkdir -p "$corpus"
  work=$(mktemp -d)
  build-fuzz/fuzz/$target -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 \
    -artifact_prefix=build-fuzz/crashes/ -print_final_stats=1 "$work" "$corpus" >"$log" 2>&1 || rc=$?
  if [ "$rc" -ne 0 ]; then
    # libFuzzer exits 70 on a slow unit, 71 on out-of-memory, 1 or 77 on a crash.
    printf 'fuzz: %s failed (exit %s); its report:\n%s\n' "$target" "$rc" \
      "$(grep -v -E '^(#[0-9]+|INFO:|\s*$|"|###)' "$log" | tail -60)"
    rm -rf "$work"
    return "$rc"
  fi
  if [ "$seconds" -gt 20 ]; then
    build-fuzz/fuzz/$target -merge=1 "$corpus" "$work" >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  printf 'fuzz: %s for %ss\n%s\n' "$target" "$seconds" "$(tail -4 "$log")"
}

# Two at a time: the machine has two cores and a target uses one.
failed=0 running=0
for target in $(ls fuzz/*_fuzz.cc | xargs -n1 basename | sed 's/\.cc$//'); do
  if [ "$running" -ge 2 ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run_one "$target" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" -eq 0 ] || { echo "fuzz: a target failed (reports above; inputs in build-fuzz/crashes/)"; exit 1; }
echo "fuzz: no crashes"
