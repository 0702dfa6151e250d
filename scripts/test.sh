#!/usr/bin/env bash
# The test command: installs what is missing, builds, runs every test
# (unit + integration as root + short fuzz runs), and prints ctest's summary.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
scripts/fuzz.sh --smoke
cd build
ctest --output-on-failure -j1 "$@"
