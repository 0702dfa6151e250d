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
  local dir=$1 flags=$2
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=Debug -DOFFCORE_WERROR=OFF \
    -DCMAKE_CXX_FLAGS="-O1 -fno-omit-frame-pointer $flags" -DCMAKE_C_FLAGS="-O1 -fno-omit-frame-pointer $flags" \
    -DCMAKE_EXE_LINKER_FLAGS="$flags" >/dev/null
  cmake --build "$dir" -j2 --target offcore_unit_tests
}

# The parts with threads of their own: the NVMe host and target (poll
# groups), the event loop, LazyDevice, VolumeStore, the supervisor, FUSE,
# the vhost-user server (a control thread and one thread per queue), the
# nexus (journal and rebuild threads, completions from any thread).
TSAN_FILTER='TargetTest.*:HostileTest.*:HostileAuthTest.*:Dhchap*:*Nvme*:EventLoop*:LazyDevice*:*VolumeStore*:StoreDir*:MappedReadView*:Supervisor*:FuseDisk*:ByteRangeIo*:BufferPool*:ChunkCache*:VhostServer*:XdsClient*:Nexus*:LateReplica*:Claim*:Csi*:*KvClient*:*EtcdClient*:EtcdClusterStore*:*EtcdAuth*'

if [ "$what" = all ] || [ "$what" = asan ]; then
  build build-asan "-fsanitize=address,undefined -fno-sanitize-recover=undefined"
  echo "sanitize: ASan + UBSan, every unit test"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1 \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    build-asan/tests/offcore_unit_tests --gtest_brief=1
fi
if [ "$what" = all ] || [ "$what" = tsan ]; then
  build build-tsan "-fsanitize=thread"
  echo "sanitize: TSan, the threaded parts ($TSAN_FILTER)"
  # scripts/tsan.supp: Debian's gRPC and Abseil are not TSan-built (see there).
  TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$PWD/scripts/tsan.supp \
    build-tsan/tests/offcore_unit_tests --gtest_brief=1 --gtest_filter="$TSAN_FILTER"
fi
