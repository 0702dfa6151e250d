#!/usr/bin/env bash
# The main job: installs what is missing, builds, runs `offcore demo`.
set -euo pipefail
cd "$(dirname "$0")/.."
export CCACHE_BASEDIR=$PWD CCACHE_NOHASHDIR=true
scripts/setup.sh
scripts/build.sh
exec build/src/offcore demo "$@"
