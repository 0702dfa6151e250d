#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test
# (clang-format and clang-tidy, short fuzz runs, the unit tests under
# ASan+UBSan and TSan, then unit + integration as root), and prints ctest's
# summary.
set -euo pipefail
cd "$(dirname "$0")/.."
# ccache entries shared between checkouts (CI clones into a new folder).
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
scripts/setup.sh
scripts/build.sh
scripts/lint.sh
scripts/fuzz.sh --smoke
scripts/sanitize.sh
cd build
# Unit tests two at a time; integration tests are RUN_SERIAL (tests/CMakeLists.txt).
ctest --output-on-failure -j2 "$@"
