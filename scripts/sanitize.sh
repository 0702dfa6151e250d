#!/usr/bin/env bash
# The unit tests again under sanitizers (CI runs both; each is its own tree):
#   scripts/sanitize.sh asan   ASan + UBSan over every unit test  (build-asan/)
#   scripts/sanitize.sh tsan   TSan over the threaded parts       (build-tsan/)
#   scripts/sanitize.sh        both
# Trees are built at -O1 with ccache; -Werror stays off there because gcc's
# sanitizer instrumentation brings its own false-positive warnings.
set -euo pipefail
cd "$(dirname "$0")/.."
what=${1:-all}

build() {
  local dir=$1 target=$2 flags=$3
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOFFCORE_WERROR=OFF \
    -DCMAKE_CXX_FLAGS="-O1 -fno-omit-frame-pointer $flags" -DCMAKE_C_FLAGS="-O1 -fno-omit-frame-pointer $flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
  cmake --build "$dir" -j2 --target "$target"
}

# Runs a gtest binary as two shards side by side (the machine has two
# cores; the tests already run two at a time under ctest) and prints the
# log of a shard that failed.
sharded() {
  local binary=$1 logs=$2 pids=() rc=0
  for i in 0 1; do
    # A job started with & ignores SIGINT; the tests need it as a user has it.
    GTEST_TOTAL_SHARDS=2 GTEST_SHARD_INDEX=$i env --default-signal=INT,QUIT "$binary" --gtest_brief=1 \
      >"$logs.$i.log" 2>&1 &
    pids+=($!)
  done
  for i in 0 1; do
    if wait "${pids[$i]}"; then
      tail -3 "$logs.$i.log"
    else
      rc=1
      echo "sanitize: shard $i of $binary failed; its log ($logs.$i.log):"
      tail -150 "$logs.$i.log"
    fi
  done
  return "$rc"
}

if [ "$what" = all ] || [ "$what" = asan ]; then
  build build-asan offcore_unit_tests "-fsanitize=address,undefined -fno-sanitize-recover=undefined"
  echo "sanitize: ASan + UBSan, every unit test"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    sharded build-asan/tests/offcore_unit_tests build-asan/unit-tests
fi
if [ "$what" = all ] || [ "$what" = tsan ]; then
  # The parts with threads of their own: offcore_threaded_tests
  # (tests/CMakeLists.txt lists them).
  build build-tsan offcore_threaded_tests "-fsanitize=thread"
  echo "sanitize: TSan, the threaded parts"
  # scripts/tsan.supp: Debian's gRPC and Abseil are not TSan-built (see there).
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp \
    sharded build-tsan/tests/offcore_threaded_tests build-tsan/threaded-tests
fi
