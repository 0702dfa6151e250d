#!/usr/bin/env bash
# Style and static checks: clang-format (.clang-format) over every C++ file
# we own, clang-tidy (.clang-tidy) over every translation unit of build/ (a
# unit found clean before, same text, flags and checks, is not run again).
#   scripts/lint.sh            check both; exit 1 on any finding
#   scripts/lint.sh --fix      rewrite the files clang-format would change
#   scripts/lint.sh --format   the clang-format check only (seconds)
# The BPF C under src/net/bpf/ follows the kernel's layout and is left out.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-check}
files() { git ls-files 'src/*.cc' 'src/*.h' 'tests/*.cc' 'tests/*.h' 'fuzz/*.cc' 'fuzz/*.h' | grep -v '^src/net/bpf/'; }

if [ "$mode" = --fix ]; then
  files | xargs clang-format -i
  exit 0
fi

echo "lint: clang-format"
bad=$(files | xargs -n 50 clang-format --dry-run 2>&1 | grep -oE '^[^:]+\.(cc|h):' | sort -u || true)
if [ -n "$bad" ]; then
  echo "$bad" | sed 's/:$//; s/^/  needs formatting: /'
  echo "lint: run scripts/lint.sh --fix"
  exit 1
fi
[ "$mode" = --format ] && exit 0

echo "lint: clang-tidy"
[ -f build/compile_commands.json ] || { echo "lint: no build/compile_commands.json; run scripts/build.sh first"; exit 1; }
# Our translation units only: generated protobuf code is not ours.
units=$(files | grep '\.cc$' | grep -v '^fuzz/' | sed "s|^|$PWD/|")
# Units found clean before (same preprocessed text, flags and checks) are
# skipped: scripts/clang_tidy_cached.py.
python3 scripts/clang_tidy_cached.py build build/clang-tidy.log $units
sed -i 's/\x1b\[[0-9;]*m//g' build/clang-tidy.log
if grep -qE '(warning|error): .*\[[a-z]+-[a-z-]+' build/clang-tidy.log; then
  grep -E -A3 '(warning|error): .*\[[a-z]+-[a-z-]+' build/clang-tidy.log | head -80
  echo "lint: clang-tidy found the above (full log: build/clang-tidy.log)"
  exit 1
fi
echo "lint: clean"
