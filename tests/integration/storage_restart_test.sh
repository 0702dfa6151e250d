#!/usr/bin/env bash
# A gateway restart during attach: the disk's I/O stalls and resumes after
# the initiator reconnects, with no error; a longer outage than the I/O
# timeout fails reads with EIO instead of hanging forever.
source "$(dirname "$0")/lib.sh"
N=sr$ID
H=gr$ID
work=$(mktemp -d /tmp/oc-sr-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
oc volume create rv --size 64M --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:rv" --node "$N" --name rv --io-timeout 6 >/dev/null
disk=/run/offcore/$N/disks/rv
head -c $((4 << 20)) /dev/urandom > "$work/pattern"
dd if="$work/pattern" of="$disk" bs=1M oflag=direct conv=notrunc status=none
sum=$(md5sum < "$work/pattern")

step "stop the gateway for 3 s while a reader runs"
gateway_stop
( sleep 3; gateway_start "$H" "$work/data"; echo started > "$work/restarted" ) &
restarter=$!
start=$(date +%s%N)
got=$(dd if="$disk" bs=1M count=4 iflag=direct status=none | md5sum)
took=$(( ($(date +%s%N) - start) / 1000000 ))
wait "$restarter"
GW_PID=$(jq -r .pid "/run/offcore/targets/$H/target.json")
echo "read stalled for $took ms"
[ "$got" = "$sum" ] || fail "data after reconnect differs"
assert_cmp "$took" ">=" 2000 "the read should have waited for the gateway"

step "writes go on after the reconnect"
dd if="$work/pattern" of="$disk" bs=1M seek=8 oflag=direct conv=notrunc status=none

step "an outage longer than --io-timeout fails with EIO, then recovers"
kill "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
rc=0
err=$(dd if="$disk" bs=4096 count=1 skip=100 iflag=direct of=/dev/null 2>&1) || rc=$?
[ "$rc" -ne 0 ] || fail "a read with the gateway gone for longer than the timeout succeeded"
grep -qi "input/output error" <<<"$err" || fail "expected EIO, got: $err"
gateway_start "$H" "$work/data"
sleep 1
for _ in $(seq 30); do
  dd if="$disk" bs=4096 count=1 iflag=direct of=/dev/null status=none 2>/dev/null && break
  sleep 0.5
done
[ "$(dd if="$disk" bs=1M count=4 iflag=direct status=none | md5sum)" = "$sum" ] || fail "no recovery after the outage"
