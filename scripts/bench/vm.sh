#!/usr/bin/env bash
# VM block device driver for `offcore bench vm` (src/bench/vm_suite.cc runs
# it and turns its output into the report). One JSON object per measurement
# goes to stdout (or --out FILE); progress goes to stderr.
#
#   vm.sh [--runs N] [--quick] [--duration S] [--out FILE] [--offcore-args "ARGS"] [--modes "M..."]
#
# --modes "offcore qemu": a subset of the back ends (the report needs all three).
# --offcore-args: extra `vm blk-serve` arguments for the offcore back end
# (to compare its settings, e.g. "--coalesce-us 0").
#
# One software DPU (ocbv). A guest (scripts/guest/kit.sh with the fio layer,
# one vCPU, TCG) runs in the node's host domain and its disk is a raw file
# served three ways, all on the same filesystem:
#   offcore  `offcore vm blk-serve` in the SoC domain (vhost-user-blk)
#   qsd      qemu-storage-daemon's vhost-user-blk export in the host domain
#            (what a host runs without a DPU)
#   qemu     QEMU's own virtio-blk (-drive if=virtio,cache=none,aio=threads)
# In the guest fio runs (direct=1, libaio, iodepth 16) 4K random read, 4K
# random write, 128K sequential read and 128K sequential write. Each job
# records its I/Os, bytes and runtime (fio's terse output), and the CPU of
# the node's host and SoC cgroups (cpuacct) between the markers fio prints
# on the guest's console right before and after the job.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../tests/integration/lib.sh"
source "$HERE/lib.sh"
bench_traps vm.sh
GUEST_KIT_LIB="$HERE/../../tests/integration/lib_guest.sh"

RUNS=3 QUICK=0 DURATION="" OUT="" OFFCORE_ARGS="" MODES_ARG=""
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --offcore-args) OFFCORE_ARGS=$2; shift 2 ;;
    --modes) MODES_ARG=$2; shift 2 ;;
    *) fail "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ "$QUICK" = 1 ] && { DURATION=${DURATION:-4}; RUNS=1; }
DURATION=${DURATION:-10}
# Results on fd 3; everything else (our progress, tools' chatter) on stderr.
if [ -n "$OUT" ]; then exec 3>>"$OUT"; else exec 3>&1; fi
exec 1>&2

[ "$(id -u)" = 0 ] || fail "run as root (namespaces, cgroups)"
for t in qemu-system-x86_64 qemu-storage-daemon fio jq; do
  command -v $t >/dev/null || fail "$t is missing; apt-get install it"
done
N=ocbv
leftover=$(ip netns list | awk '{print $1}' | grep '^ocbv' || true)
[ ! -e "/run/offcore/$N" ] || leftover+=" node:$N"
[ -z "$leftover" ] || fail "left from an earlier run:$leftover; remove them (ip netns delete NAME, offcore dpu down --name $N)"

# lib_guest.sh keeps the guests' files in /tmp/oc-guest-$ID (removed on exit).
# shellcheck source=../../tests/integration/lib_guest.sh
source "$GUEST_KIT_LIB"
work=$(mktemp -d /var/tmp/ocbv-vm-XXXX); cleanup "rm -rf $work"
export OFFCORE_CONFIG=$work/config.json
echo "{\"cluster_dir\": \"$work/cluster\"}" > "$OFFCORE_CONFIG"

step "node $N, the guest kit, a 1 GiB raw backing file"
netns_add ocbv-h
node_up "$N" --host-netns ocbv-h >/dev/null
guest_kit
disk=$work/disk.raw
# Written, not sparse: reads must reach data, not holes.
dd if=/dev/zero of="$disk" bs=1M count=1024 status=none conv=fsync
HOST_CG=offcore/$N/host SOC_CG=offcore/$N/soc
[ -e "$CG/cpuacct/$HOST_CG/cpuacct.usage" ] || fail "no cpuacct cgroup $HOST_CG; is cgroup v1 cpuacct mounted?"

# JOBS: name rw bs_kib, in the guest's order.
JOBS=("randread randread 4" "randwrite randwrite 4" "seqread read 128" "seqwrite write 128")
IODEPTH=16

guest_script() {
  echo '#!/bin/sh'
  # fio sends an exec_prerun command's stdout to a file: the marker goes to
  # the console from a script of its own.
  printf 'printf "#!/bin/sh\\necho \\"\\$*\\" >/dev/console\\n" >/tmp/mark\nchmod 755 /tmp/mark\n'
  local j name rw bs
  for j in "${JOBS[@]}"; do
    read -r name rw bs <<<"$j"
    # fio prints the markers itself right before and after the job (its
    # setup, slow under TCG, stays out); the driver samples the cgroups
    # when it sees them.
    cat <<EOF
fio --name=$name --filename=/dev/vda --direct=1 --ioengine=libaio --rw=$rw --bs=${bs}k --iodepth=$IODEPTH \
  --size=1G --time_based --runtime=$DURATION --output-format=terse --terse-version=3 \
  --exec_prerun='/tmp/mark OCB-BEGIN $name' --exec_postrun='/tmp/mark OCB-END $name' \
  >/tmp/$name.out 2>&1 || echo "OCB-FIOFAIL $name"
echo "OCB-TERSE $name \$(tail -1 /tmp/$name.out)"
EOF
  done
}

# wait_line GUEST TEXT: polls the console until a line starts with TEXT.
wait_line() {
  local log="$GUEST_DIR/$1.log" pid i
  pid=$(guest_pid "$1")
  for (( i = 0; i < (DURATION + 120) * 20; i++ )); do
    tr -d '\r' <"$log" | grep -q "^$2\$" && return 0
    alive "$pid" || break
    sleep 0.05
  done
  # The guest may have printed it just before QEMU ended.
  tr -d '\r' <"$log" | grep -q "^$2\$" && return 0
  tail -20 "$log" >&2
  fail "guest $1: no \"$2\" on its console (QEMU: $(tail -3 "$GUEST_DIR/$1.qemu.err"))"
}

start_offcore() {
  rm -f "$1"
  "$OFFCORE" dpu exec --name "$N" --domain soc -- \
    "$OFFCORE" vm blk-serve --socket "$1" --file "$disk" $OFFCORE_ARGS >>"$work/blk-serve.log" 2>&1 &
  BACKEND=$!
}
start_qsd() {
  rm -f "$1"
  "$OFFCORE" dpu exec --name "$N" --domain host -- \
    qemu-storage-daemon --blockdev "driver=file,node-name=f0,filename=$disk" \
    --blockdev driver=raw,node-name=d0,file=f0 \
    --export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$1,writable=on" \
    >>"$work/qsd.log" 2>&1 &
  BACKEND=$!
}
stop_backend() {
  [ -n "${BACKEND:-}" ] || return 0
  kill "$BACKEND" 2>/dev/null || true
  wait "$BACKEND" 2>/dev/null || true
  BACKEND=
}
cleanup stop_backend

# measure RUN MODE: one guest, all jobs, one JSON line per job.
measure() {
  local run=$1 mode=$2 g="$2$1" sock="$GUEST_DIR/$2.sock" disk_opt=() i
  BACKEND=
  case $mode in
    offcore) start_offcore "$sock"; disk_opt=(--vhost-blk "$sock") ;;
    qsd) start_qsd "$sock"; disk_opt=(--vhost-blk "$sock") ;;
    qemu) disk_opt=(--drive "$disk") ;;
  esac
  if [ -n "$BACKEND" ]; then
    for (( i = 0; i < 200; i++ )); do [ -S "$sock" ] && break; alive "$BACKEND" || break; sleep 0.05; done
    [ -S "$sock" ] || fail "$mode back end did not listen on $sock: $(tail -3 "$work"/*.log)"
  fi
  guest_boot "$g" --fio "${disk_opt[@]}" --in-domain "$N" host < <(guest_script)
  local j name rw bs h0 s0 t0 h1 s1 t1 line
  for j in "${JOBS[@]}"; do
    read -r name rw bs <<<"$j"
    wait_line "$g" "OCB-BEGIN $name"
    h0=$(cg_cpu "$HOST_CG"); s0=$(cg_cpu "$SOC_CG"); t0=$(now)
    wait_line "$g" "OCB-END $name"
    h1=$(cg_cpu "$HOST_CG"); s1=$(cg_cpu "$SOC_CG"); t1=$(now)
    wait_line "$g" "OCB-TERSE $name.*"
    tr -d '\r' <"$GUEST_DIR/$g.log" | grep -q "^OCB-FIOFAIL $name" &&
      fail "fio $name failed in the guest ($mode): $(tr -d '\r' <"$GUEST_DIR/$g.log" | grep -A3 "^OCB-TERSE $name")"
    line=$(tr -d '\r' <"$GUEST_DIR/$g.log" | sed -n "s/^OCB-TERSE $name //p" | tail -1)
    # terse v3: read kB, bw, iops, runtime ms in fields 6-9; write in 47-50.
    echo "$line" | awk -F';' -v run="$run" -v mode="$mode" -v job="$name" -v bs="$bs" -v qd="$IODEPTH" \
      -v h="$h1" -v h0="$h0" -v s="$s1" -v s0="$s0" -v t="$t1" -v t0="$t0" '
      NF < 50 { exit 1 }
      { o = (job ~ /write/) ? 41 : 0
        kib = $(6 + o); rt = $(9 + o)
        printf "{\"case\":\"fio\",\"run\":%d,\"mode\":\"%s\",\"job\":\"%s\",\"bs_kib\":%d,\"iodepth\":%d,", run, mode, job, bs, qd
        printf "\"ios\":%d,\"kib\":%d,\"runtime_ms\":%d,\"iops\":%s,", kib / bs, kib, rt, $(8 + o)
        printf "\"host_cpu_s\":%.6f,\"soc_cpu_s\":%.6f,\"wall_s\":%.3f}\n", h - h0, s - s0, t - t0 }' >&3 ||
      fail "fio $name ($mode): unreadable terse line: $line"
    echo "$mode run $run $name: $(echo "$line" | awk -F';' -v o="$([[ $name == *write* ]] && echo 41 || echo 0)" '{print $(8+o) " IOPS, " $(7+o) " KiB/s"}')"
  done
  guest_wait "$g" $((DURATION * 8 + 120)) || fail "guest $g ($mode) ended with an error: $(guest_output "$g" | tail -5)"
  stop_backend
}

MODES=(offcore qsd qemu)
[ -z "$MODES_ARG" ] || read -r -a MODES <<<"$MODES_ARG"
for (( r = 1; r <= RUNS; r++ )); do
  # Rotate the order between runs: no mode always goes first (cold cache).
  for (( k = 0; k < ${#MODES[@]}; k++ )); do
    mode=${MODES[$(( (k + r - 1) % ${#MODES[@]} ))]}
    step "run $r/$RUNS: $mode"
    measure "$r" "$mode"
  done
done
step "done"
