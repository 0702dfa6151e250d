#!/usr/bin/env bash
# Fail fast on a lost path (issue 19, 3): once the disk's initiator knows
# the gateway is gone, a new write returns EIO in under a second after
# --fast-io-fail instead of waiting --io-timeout; writes work again when the
# gateway returns; after --ctrl-loss-timeout the disk reports itself failed
# and stays failed, even when the gateway comes back.
source "$(dirname "$0")/lib.sh"
N=sf$ID
H=gf$ID
work=$(mktemp -d /tmp/oc-sf-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
oc volume create fv --size 64M --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:fv" --node "$N" --name fv \
  --io-timeout 30 --fast-io-fail 2 --ctrl-loss-timeout 12 >/dev/null
disk=/run/offcore/$N/disks/fv
head -c $((1 << 20)) /dev/urandom > "$work/pattern"

disk_json() { oc disk list --node "$N" --json | jq -r --arg f "$1" '.[] | select(.name=="fv") | .[$f]'; }
wait_state() {  # STATE SECONDS
  for _ in $(seq $(($2 * 10))); do [ "$(disk_json state)" = "$1" ] && return 0; sleep 0.1; done
  fail "the disk is '$(disk_json state)', not '$1', after $2 s"
}
# timed_write SEEK_MB: prints "<rc> <ms>" of one 4K O_DIRECT write; its error in $work/dd.err.
timed_write() {
  local t0 rc=0
  t0=$(date +%s%N)
  dd if="$work/pattern" of="$disk" bs=4096 count=1 seek=$(($1 * 256)) oflag=direct conv=notrunc \
    status=none 2>"$work/dd.err" || rc=$?
  echo "$rc $(( ($(date +%s%N) - t0) / 1000000 ))"
}

step "the bounds are in the disk's record"
[ "$(disk_json io_timeout_s)" = 30 ] || fail "io_timeout_s: $(disk_json io_timeout_s)"
[ "$(disk_json fast_io_fail_s)" = 2 ] || fail "fast_io_fail_s: $(disk_json fast_io_fail_s)"
[ "$(disk_json ctrl_loss_timeout_s)" = 12 ] || fail "ctrl_loss_timeout_s: $(disk_json ctrl_loss_timeout_s)"
[ "$(disk_json state)" = live ] || fail "a fresh disk is '$(disk_json state)'"
oc disk list --node "$N" | grep -q "fv .*live" || fail "disk list does not show the state: $(oc disk list --node "$N")"
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="disk-fv") | .pid')
tr '\0' ' ' < "/proc/$svc_pid/cmdline" | grep -q -- "--fast-io-fail 2 --ctrl-loss-timeout 12" \
  || fail "the service the agent restarts does not carry the bounds: $(tr '\0' ' ' < "/proc/$svc_pid/cmdline")"
dd if="$work/pattern" of="$disk" bs=1M oflag=direct conv=notrunc status=none
sum=$(md5sum < "$work/pattern")

step "the gateway goes away: the first write fails after --fast-io-fail, not --io-timeout"
gateway_stop
read -r rc ms < <(timed_write 4)
echo "first write: rc $rc in $ms ms: $(cat "$work/dd.err")"
[ "$rc" -ne 0 ] || fail "a write with the gateway gone succeeded"
grep -qi "input/output error" "$work/dd.err" || fail "expected EIO, got: $(cat "$work/dd.err")"
assert_cmp "$ms" "<" 6000 "the first write should fail about 2 s after the loss"
wait_state reconnecting 2

step "a new write on the known-lost path returns EIO in under 1 s"
for i in 1 2 3; do
  read -r rc ms < <(timed_write $((4 + i)))
  echo "write $i: rc $rc in $ms ms"
  [ "$rc" -ne 0 ] || fail "a write with the gateway gone succeeded"
  grep -qi "input/output error" "$work/dd.err" || fail "expected EIO, got: $(cat "$work/dd.err")"
  assert_cmp "$ms" "<" 1000 "a write on a lost path must fail at once"
done

step "the gateway returns: I/O works again, the data is intact"
gateway_start "$H" "$work/data"
wait_state live 10
read -r rc ms < <(timed_write 8)
[ "$rc" -eq 0 ] || fail "a write after the gateway returned failed: $(cat "$work/dd.err")"
[ "$(dd if="$disk" bs=1M count=1 iflag=direct status=none | md5sum)" = "$sum" ] || fail "data differs after the outage"

step "lost for longer than --ctrl-loss-timeout: the disk is failed, and stays failed"
gateway_stop
read -r rc ms < <(timed_write 9)
[ "$rc" -ne 0 ] || fail "a write with the gateway gone succeeded"
start=$(date +%s%N)
wait_state failed 20
echo "failed $(( ($(date +%s%N) - start) / 1000000 )) ms after the first failed write"
gateway_start "$H" "$work/data"
sleep 2
[ "$(disk_json state)" = failed ] || fail "a failed disk reconnected: $(disk_json state)"
read -r rc ms < <(timed_write 10)
echo "write on a failed disk: rc $rc in $ms ms"
[ "$rc" -ne 0 ] || fail "a write on a failed disk succeeded"
assert_cmp "$ms" "<" 1000 "a failed disk must fail I/O at once"
oc disk list --node "$N" | grep -q "fv .*failed" || fail "disk list does not show failed"

step "bad bounds are refused at attach"
expect_fail "--fast-io-fail" oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:fv" --node "$N" --name fv2 --fast-io-fail -5
oc disk detach fv --node "$N" >/dev/null
