#!/usr/bin/env bash
# A vhost-user-blk back end killed with -9 under guest I/O and started again
# resumes the requests it had in flight (INFLIGHT_SHMFD): the guest runs fio
# (random 64 KiB O_DIRECT writes, 16 deep, every block checked with crc32c)
# for about 30 s while the test kills `offcore vm blk-serve` with -9 and
# restarts it on the same socket (QEMU reconnects every second). fio must end
# with no error and every block verified, the guest kernel must log no I/O
# error, and at least one restart must have resubmitted in-flight requests
# (its log says how many). A back end at full speed spends most of its time
# waiting for the TCG guest, so a kill rarely lands inside a request: for the
# second before each kill the back end runs in a CPU cgroup throttled to 1 ms a second,
# so the guest's 16 queued requests pile up and the back end is almost surely
# inside one when -9 arrives. Kills repeat (at least two, up to eight) until
# a restart has resubmitted something.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"

D=$GUEST_DIR/kill
mkdir -p "$D"
sock=$D/blk.sock disk=$D/disk.raw log=$D/blk-serve.log
truncate -s 256M "$disk"
MIN_KILLS=2 MAX_KILLS=8 WINDOW=40

serve() {
  local i
  "$OFFCORE" vm blk-serve --socket "$sock" --file "$disk" >>"$log" 2>&1 &
  OC_PID=$!
  for (( i = 0; i < 100; i++ )); do [ -S "$sock" ] && return 0; alive "$OC_PID" || break; sleep 0.05; done
  fail "offcore vm blk-serve did not listen on $sock: $(tail -3 "$log")"
}

serve_stop() {
  [ -n "${OC_PID:-}" ] || return 0
  kill "$OC_PID" 2>/dev/null
  wait "$OC_PID" 2>/dev/null || true
  OC_PID=
}
cleanup serve_stop

CG=/sys/fs/cgroup/cpu/oc-blkkill-$ID
mkdir "$CG" || fail "cannot create the cpu cgroup $CG"
cleanup "rmdir $CG"
echo 1000000 >"$CG/cpu.cfs_period_us"
echo 1000 >"$CG/cpu.cfs_quota_us"

resubmitted() { sed -n 's/.*resubmits \([0-9]*\) in-flight requests.*/\1/p' "$log" | awk '{s += $1} END {print s + 0}'; }

step "guest runs fio with crc32c verify on the vhost-user-blk disk for ${WINDOW}s"
serve
guest_boot g --fio --reconnect 1 --vhost-blk "$sock" <<G
#!/bin/sh
end=\$((\$(date +%s) + $WINDOW))
runs=0
echo FIO-START
while [ \$(date +%s) -lt \$end ]; do
  runs=\$((runs + 1))
  fio --name=kill --filename=/dev/vda --direct=1 --ioengine=libaio --iodepth=16 --rw=randwrite --bs=64k \
      --size=64M --randseed=\$runs --verify=crc32c --do_verify=1 --verify_fatal=1 >/tmp/fio.out 2>&1
  rc=\$?
  grep -q 'err= 0' /tmp/fio.out || rc=99
  if [ \$rc -ne 0 ]; then cat /tmp/fio.out; echo "FIO-FAILED=\$runs rc=\$rc"; exit 1; fi
done
echo "RUNS=\$runs"
echo "IOERRORS=\$(dmesg | grep -ci 'i/o error')"
G

for (( i = 0; i < 1200; i++ )); do grep -q FIO-START "$GUEST_DIR/g.log" && break; sleep 0.1; done
grep -q FIO-START "$GUEST_DIR/g.log" || fail "the guest did not start fio: $(tail -5 "$GUEST_DIR/g.log")"

step "kill -9 the back end under fio and start it again (at least $MIN_KILLS times)"
kills=0
t0=$SECONDS
while (( kills < MAX_KILLS && SECONDS - t0 < WINDOW - 8 )); do
  (( kills >= MIN_KILLS && $(resubmitted) > 0 )) && break
  sleep "$(( 2 + RANDOM % 2 )).$(( RANDOM % 10 ))"
  grep -q '^KIT-RESULT' "$GUEST_DIR/g.log" && break
  alive "$OC_PID" || fail "blk-serve died on its own: $(tail -5 "$log")"
  echo "$OC_PID" >"$CG/cgroup.procs"
  sleep 1
  kill -9 "$OC_PID"
  wait "$OC_PID" 2>/dev/null || true
  kills=$((kills + 1))
  serve
  # Wait for QEMU to reconnect and the queue to start again.
  for (( j = 0; j < 100; j++ )); do
    [ "$(grep -c 'queue 0 started' "$log")" -gt "$kills" ] && break
    sleep 0.1
  done
  echo "kill $kills: back end restarted, $(resubmitted) in-flight requests resubmitted so far"
done

step "fio ends with no error and every block verified"
guest_wait g 300 || { guest_output g | tail -30; fail "fio failed in the guest after $kills kills"; }
runs=$(guest_value g RUNS) ioerr=$(guest_value g IOERRORS) total=$(resubmitted)
echo "$kills kills, $total in-flight requests resubmitted, $runs fio write+verify runs, $ioerr guest I/O errors"
[ "$kills" -ge "$MIN_KILLS" ] || fail "only $kills kills happened while fio ran (wanted $MIN_KILLS)"
[ -n "$runs" ] && [ "$runs" -ge 1 ] || fail "the guest reported no fio run"
[ "$ioerr" = 0 ] || fail "the guest kernel logged $ioerr I/O errors"
[ "$total" -gt 0 ] || fail "no kill caught a request in flight in $kills kills (no 'resubmits N in-flight requests' in $log)"
grep -q 'inflight tracked' "$log" || fail "QEMU did not negotiate INFLIGHT_SHMFD (no 'inflight tracked' in $log)"
echo "PASS"
