#!/usr/bin/env bash
# Issue 13 test 2: the disk back end of a VM (`offcore vm start`: agent
# service vm-NAME-blk in the SoC) killed with -9 under guest fio, and
# restarted by the agent, resubmits the requests it had in flight
# (INFLIGHT_SHMFD): the guest runs fio (random 64 KiB O_DIRECT writes, 16
# deep, libaio, every block checked with crc32c) while the test kills the
# back end KILLS times; QEMU reconnects (reconnect=1). fio must end with no
# error and every block verified, and the guest kernel must log no I/O error.
#
# Each kill lands with a request in flight, or the test proves nothing: the
# test stops the back end (SIGSTOP), reads the inflight region QEMU keeps
# (its fd to the back end's memfd "offcore-vhost-inflight"), and kills only
# when some descriptor is marked in flight; otherwise it lets the back end
# go on and tries again. The writes are O_SYNC (fio --sync=1: each is a
# write and a FLUSH, an fdatasync of the disk file in the back end), a slow
# device: with 16 requests queued the back end is mostly inside one. The restarted back end must then say it resubmits
# that many requests (one fewer when it was stopped between publishing a
# used idx and recording it: the spec's last-batch repair; for a packed ring
# also when it was stopped half-way through taking a chain, which recovery
# undoes).
#
# OC_DISK_RING=packed (vm_blk_kill_packed_test.sh) runs the same with the
# disk on a packed virtqueue (vm create --disk-ring packed): the guest must
# report VIRTIO_F_RING_PACKED (its feature bit 34) and the region is read in
# the packed layout.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
RING=${OC_DISK_RING:-split}
case $RING in
  split) want_packed=0 header=16 entry=16 ;;
  packed) want_packed=1 header=32 entry=32 ;;
  *) fail "OC_DISK_RING must be split or packed, not '$RING'" ;;
esac
N=vk$ID
VM=kl$ID
KILLS=3
WINDOW=60 # seconds of fio runs in the guest; the kills need about 20 of them
node_up "$N" >/dev/null
guest_kit
disk=$GUEST_DIR/disk.raw
truncate -s 256M "$disk"
cleanup "\"$OFFCORE\" vm delete $VM --force"
console=/run/offcore/$N/vms/$VM/console.log
blklog=/run/offcore/$N/vm-$VM-blk.log

_guest_initrd "$VM" 1 <<G
#!/bin/sh
end=\$((\$(date +%s) + $WINDOW))
runs=0
echo "PACKED=\$(cut -c35 /sys/block/vda/device/features)"
echo FIO-START
while [ \$(date +%s) -lt \$end ]; do
  runs=\$((runs + 1))
  fio --name=kill --filename=/dev/vda --direct=1 --sync=1 --ioengine=libaio --iodepth=16 --rw=randwrite --bs=64k \
      --size=64M --randseed=\$runs --verify=crc32c --do_verify=1 --verify_fatal=1 >/tmp/fio.out 2>&1
  rc=\$?
  grep -q 'err= 0' /tmp/fio.out || rc=99
  if [ \$rc -ne 0 ]; then cat /tmp/fio.out; echo "FIO-FAILED=\$runs rc=\$rc"; exit 1; fi
  echo "FIO-RUN=\$runs"
done
echo "RUNS=\$runs"
echo "IOERRORS=\$(dmesg | grep -ci 'i/o error')"
G

diag() {
  echo "--- back end log (tail):" >&2; tail -15 "$blklog" >&2
  echo "--- guest console (tail):" >&2; tail -30 "$console" >&2
}

step "a VM with fio in its initramfs, disk ($RING ring) served by vm-$VM-blk in the SoC"
oc vm create "$VM" --node "$N" --cpus 1 --mem 512M --disk "$disk" --disk-ring "$RING" --kernel "$GUEST_KIT/kernel" \
  --initrd "$GUEST_DIR/$VM.initrd" --append "console=ttyS0 panic=-1 quiet"
oc vm start "$VM"
for _ in $(seq 1200); do grep -q '^FIO-START' "$console" 2>/dev/null && break; sleep 0.1; done
grep -q '^FIO-START' "$console" || { diag; fail "the guest did not start fio"; }
packed=$(sed -n 's/^PACKED=//p' "$console" | tr -d '\r' | head -1)
[ "$packed" = "$want_packed" ] ||
  { diag; fail "the guest's disk has feature bit 34 (RING_PACKED) = '$packed', want $want_packed for a $RING ring"; }
if [ "$RING" = packed ]; then
  grep -q 'queue 0 started (packed' "$blklog" || { diag; fail "the back end did not start queue 0 as a packed ring"; }
fi

svc_pid() { oc dpu service list --name "$N" --json | jq -r --arg s "$1" '.[] | select(.name == $s) | .pid'; }
qpid=$(svc_pid "vm-$VM-qemu")
[ -n "$qpid" ] && [ "$qpid" != null ] || fail "no QEMU service"
grep -q 'inflight tracked' "$blklog" || { diag; fail "QEMU did not negotiate INFLIGHT_SHMFD (no 'inflight tracked')"; }
# QEMU's fd to the inflight memfd (it sends it back after every reconnect).
region_fd() {
  local f
  for f in /proc/"$qpid"/fd/*; do
    [[ "$(readlink "$f" 2>/dev/null)" == *offcore-vhost-inflight* ]] && echo "$f" && return 0
  done
  return 1
}
region=$(region_fd) || fail "QEMU holds no inflight memfd from the back end (GET_INFLIGHT_FD)"
qsize=$(od -An -tu2 -j10 -N2 "$region" | tr -d ' ')
[ "$qsize" -gt 0 ] || fail "queue 0's inflight region has no descriptors"

# Requests queue 0's region marks in flight: the u8 at the start of each
# entry (split: 16 + 16*i, a head descriptor; packed: 32 + 32*i, a chain's
# head entry).
in_flight() {
  region=$(region_fd) || { echo "QEMU's fds: $(ls -l /proc/"$qpid"/fd)" >&2; return 1; }
  od -An -v -tu1 -w$entry -j$header -N $((entry * qsize)) "$region" | awk '$1 == 1 { n++ } END { print n + 0 }'
}
all_stopped() {
  local t
  for t in /proc/"$1"/task/*/stat; do [ "$(awk '{print $3}' "$t" 2>/dev/null)" = T ] || return 1; done
}
# Stops the back end with at least one request in flight; prints how many.
stop_in_flight() {
  local pid=$1 try i n
  for (( try = 0; try < 300; try++ )); do
    kill -STOP "$pid"
    for (( i = 0; i < 400; i++ )); do all_stopped "$pid" && break; sleep 0.005; done
    n=$(in_flight) || return 1
    (( n > 0 )) && { echo "$n"; return 0; }
    kill -CONT "$pid"
    sleep 0.0$(( RANDOM % 3 ))
  done
  return 1
}
starts() { grep -c 'queue 0 started' "$blklog"; }

step "kill -9 the back end $KILLS times, each with requests in flight; the agent restarts it"
total=0
for (( k = 1; k <= KILLS; k++ )); do
  sleep "$(( 2 + RANDOM % 3 )).$(( RANDOM % 10 ))"
  grep -q '^KIT-RESULT' "$console" && { diag; fail "fio ended before kill $k"; }
  bpid=$(svc_pid "vm-$VM-blk")
  [ -n "$bpid" ] && [ "$bpid" != null ] || { diag; fail "no back end running before kill $k"; }
  before=$(starts) lines=$(wc -l <"$blklog")
  seen=$(stop_in_flight "$bpid") || { kill -CONT "$bpid"; diag; fail "the back end never had a request in flight"; }
  kill -9 "$bpid"
  for (( i = 0; i < 300; i++ )); do (( $(starts) > before )) && break; sleep 0.1; done
  (( $(starts) > before )) || { diag; fail "the agent did not restart the back end (or QEMU did not reconnect)"; }
  last=$(tail -n +$((lines + 1)) "$blklog" | sed -n 's/.*queue 0 resubmits \([0-9]*\) in-flight requests.*/\1/p' | head -1)
  last=${last:-0}
  echo "kill $k: $seen request(s) in flight in the region, the restarted back end resubmitted $last"
  (( last == seen || last == seen - 1 )) || { diag; fail "kill $k: $seen in flight but $last resubmitted"; }
  total=$((total + last))
done
(( total > 0 )) || fail "no restart resubmitted anything in $KILLS kills"

step "fio ends with no error and every block verified"
for (( i = 0; i < (WINDOW + 240) * 10; i++ )); do grep -q '^KIT-RESULT' "$console" && break; sleep 0.1; done
grep -q '^KIT-RESULT' "$console" || { diag; fail "the guest's fio did not end (hung after a restart?)"; }
grep -q '^KIT-RESULT rc=0' "$console" || { diag; fail "fio failed in the guest after $KILLS kills"; }
runs=$(sed -n 's/^RUNS=//p' "$console" | tr -d '\r') ioerr=$(sed -n 's/^IOERRORS=//p' "$console" | tr -d '\r')
echo "$RING ring: $KILLS kills, $total in-flight requests resubmitted, $runs fio write+verify runs, $ioerr guest I/O errors"
[ -n "$runs" ] && [ "$runs" -ge 1 ] || fail "the guest reported no fio run"
[ "$ioerr" = 0 ] || fail "the guest kernel logged $ioerr I/O errors"
echo "PASS"
