#!/usr/bin/env bash
# A network partition between a node's SoC and its storage gateway (the
# node's fabric link goes down: packets vanish, no connection is reset):
#  1. 5 s, under fio writing with crc32c verify on a disk with the default
#     bounds: a stall, 0 errors, the data verifies;
#  2. longer than the bounds of a disk attached with --io-timeout 4
#     --fast-io-fail 1: the write in flight fails with EIO within its
#     io-timeout, once the loss is known new writes fail at once, and when
#     the path returns the disk reconnects and its data is intact.
source "$(dirname "$0")/lib.sh"
N=sp$ID
H=gp$ID
work=$(mktemp -d /tmp/oc-sp-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
oc volume create pv --size 128M --target "$H" >/dev/null
oc volume create pw --size 16M --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:pv" --node "$N" --name pv >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:pw" --node "$N" --name pw \
  --io-timeout 4 --fast-io-fail 1 >/dev/null
cleanup "oc disk detach pv --node $N --force"
cleanup "oc disk detach pw --node $N --force"
link=ocu-$N
partition() { ip -n oc-fabric link set "$link" "$1"; }
cleanup "ip -n oc-fabric link set $link up 2>/dev/null"
state() { oc disk list --node "$N" --json | jq -r --arg d "$1" '.[] | select(.name==$d) | .state'; }
wait_state() {  # DISK STATE SECONDS
  for _ in $(seq $(($3 * 10))); do [ "$(state "$1")" = "$2" ] && return 0; sleep 0.1; done
  fail "disk $1 is '$(state "$1")', not '$2', after $3 s"
}

step "1. a 5 s partition under fio write + crc32c verify: a stall, 0 errors"
fio --name=part --filename="/run/offcore/$N/disks/pv" --rw=randwrite --bs=16k --size=96M --rate=16m \
  --ioengine=libaio --iodepth=8 --direct=1 --verify=crc32c --verify_fatal=1 --verify_state_save=0 \
  --output-format=json --output="$work/fio.json" > "$work/fio.out" 2>&1 &
fio_pid=$!
cleanup "kill $fio_pid 2>/dev/null"
sleep 1
partition down
sleep 5
partition up
alive "$fio_pid" || fail "fio ended during the partition: $(tail -3 "$work/fio.out")"
rc=0
wait "$fio_pid" || rc=$?
[ "$rc" = 0 ] || fail "fio failed (rc $rc): $(tail -5 "$work/fio.out")"
err=$(jq '.jobs[0].error' "$work/fio.json")
written=$(jq '.jobs[0].write.io_kbytes' "$work/fio.json")
verified=$(jq '.jobs[0].read.io_kbytes' "$work/fio.json")
worst=$(jq '.jobs[0].write.clat_ns.max / 1e6 | floor' "$work/fio.json")
echo "fio: error $err, $written KiB written, $verified KiB verified, worst write latency $worst ms"
[ "$err" = 0 ] || fail "fio reported error $err"
assert_cmp "$verified" ">=" "$written" "fio verified less than it wrote"
[ "$(state pv)" = live ] || fail "disk pv is '$(state pv)' after the partition"

step "2. a partition longer than the bounds: EIO within io-timeout, then at once; back when the path returns"
disk=/run/offcore/$N/disks/pw
head -c $((1 << 20)) /dev/urandom > "$work/pattern"
dd if="$work/pattern" of="$disk" bs=1M oflag=direct conv=notrunc status=none
sum=$(md5sum < "$work/pattern")
timed_write() {  # SEEK_4K -> "<rc> <ms>"
  local t0 rc=0
  t0=$(date +%s%N)
  dd if="$work/pattern" of="$disk" bs=4096 count=1 seek="$1" oflag=direct conv=notrunc status=none \
    2>"$work/dd.err" || rc=$?
  echo "$rc $(( ($(date +%s%N) - t0) / 1000000 ))"
}
partition down
read -r rc ms < <(timed_write 300)
echo "write in the partition: rc $rc after $ms ms: $(cat "$work/dd.err")"
[ "$rc" != 0 ] || fail "a write across the partition succeeded"
grep -qi "input/output error" "$work/dd.err" || fail "expected EIO, got: $(cat "$work/dd.err")"
assert_cmp "$ms" "<" 5500 "the write should fail at its 4 s io-timeout"
wait_state pw reconnecting 15
sleep 1.5  # past --fast-io-fail: from now on new I/O fails without waiting
read -r rc ms < <(timed_write 301)
echo "write once the loss is known: rc $rc after $ms ms"
[ "$rc" != 0 ] || fail "a write on the lost path succeeded"
assert_cmp "$ms" "<" 1000 "a write on a known-lost path must fail at once"
partition up
wait_state pw live 15
read -r rc ms < <(timed_write 302)
[ "$rc" = 0 ] || fail "a write after the path returned failed: $(cat "$work/dd.err")"
[ "$(dd if="$disk" bs=1M count=1 iflag=direct status=none | md5sum)" = "$sum" ] || fail "data differs after the partition"
echo "PASS"
