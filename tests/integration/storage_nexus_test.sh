#!/usr/bin/env bash
# A disk mirrored over three gateways (issue 17's nexus, in the node's
# SoC): writes reach all; one gateway killed with -9 under fio --verify
# costs the host no error (the disk goes degraded); the gateway back, the
# SoC rebuilds only what it missed while the disk stays in use; every
# replica then holds the same bytes (each read alone). A replica behind
# when the disk restarts is not read from (the journal says so) until it
# is rebuilt.
source "$(dirname "$0")/lib.sh"
N=nx$ID
A=gna$ID B=gnb$ID C=gnc$ID
work=$(mktemp -d /tmp/oc-nx-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateways_up "$work" "$A" "$B" "$C"
export OFFCORE_CONFIG=$work/config.json
echo "{\"cluster_dir\": \"$work/cluster\"}" > "$OFFCORE_CONFIG"
node_up "$N" --host-netns "h$N" >/dev/null
step "replicated volume: bad placements are refused and make nothing"
out=$(oc volume create kv --size 256M --replicas 3 --targets "$A,$B" 2>&1) && fail "3 replicas on 2 hosts: $out"
grep -q "3 replicas need 3 storage hosts" <<<"$out" || fail "unclear error for too few hosts: $out"
out=$(oc volume create kv --size 256M --replicas 2 --targets "$A,$A" 2>&1) && fail "2 replicas on one host: $out"
grep -q "one storage host" <<<"$out" || fail "unclear error for one host twice: $out"
for g in "$A" "$B"; do
  [ "$(oc volume list --target "$g" --json | jq length)" = 0 ] || fail "a refused create left a volume on $g"
done
oc volume create kv --size 256M --replicas 3 --targets "$A,$B,$C" >/dev/null
[ "$(oc volume list --replicated --json | jq -r '.[0].name')" = kv ] || fail "volume list --replicated does not show kv"
URI_A="nvme-tcp://$A_IP:4420/nqn.2026-11.io.offcore:$A:kv"
URI_B="nvme-tcp://$B_IP:4420/nqn.2026-11.io.offcore:$B:kv"
URI_C="nvme-tcp://$C_IP:4420/nqn.2026-11.io.offcore:$C:kv"
disk=/run/offcore/$N/disks/kv
log=/run/offcore/$N/disk-kv.log
attach() {
  oc disk attach --volume kv --node "$N" --fast-io-fail 1 >/dev/null
}
vol_state() { oc volume get kv --json | jq -r "$1"; }
nexus_state() { jq -r '.nexus.state' "$disk.json"; }
replica_state() { jq -r ".nexus.replicas[$1].state" "$disk.json"; }
wait_state() {  # wait_state STATE SECONDS
  for _ in $(seq $(( $2 * 10 ))); do [ "$(nexus_state)" = "$1" ] && return 0; sleep 0.1; done
  tail -5 "$log" >&2
  fail "the nexus did not become $1 in $2 s: $(jq -c .nexus "$disk.json")"
}
restart_c() {
  GW_IP=$C_IP gateway_start "$C" "$work/c"; C_PID=$GW_PID
}

step "attach kv mirrored over $A, $B and $C; 32 MiB written reach all"
attach
cleanup "\"$OFFCORE\" disk detach kv --node $N --force"
[ "$(nexus_state)" = online ] || fail "a fresh mirror is not online: $(jq -c .nexus "$disk.json")"
[ "$(jq '.nexus.replicas | length' "$disk.json")" = 3 ] || fail "the record does not list 3 replicas"
head -c $((32 << 20)) /dev/urandom > "$work/d1"
dd if="$work/d1" of="$disk" bs=1M oflag=direct conv=notrunc status=none
journal=$(jq -r .journal "$disk.json")
[ "$(stat -c %a "$journal")" = 600 ] || fail "the nexus journal $journal is not 0600"

step "gateway $C killed with -9 under fio --verify: 0 errors, the disk is degraded"
# Rate-limited to about 3 s of writes, so the kill lands mid-run.
fio --name=nexus --filename="$disk" --offset=64M --size=64M --rw=randwrite --bs=16k --rate=24m --ioengine=libaio \
  --iodepth=16 --direct=1 --verify=crc32c --verify_fatal=1 --verify_state_save=0 --randrepeat=0 \
  --output-format=json --output="$work/fio.json" > "$work/fio.out" 2>&1 &
fio_pid=$!
cleanup "kill $fio_pid"
sleep 0.7
kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null || true
alive "$fio_pid" || fail "fio ended before the kill; make its job longer: $(tail -3 "$work/fio.out")"
rc=0; wait "$fio_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "fio failed with one replica lost (rc $rc): $(tail -5 "$work/fio.out")"
errs=$(jq '[.jobs[].error] | add' "$work/fio.json")
[ "$errs" -eq 0 ] || fail "fio reported error $errs with one replica lost"
wait_state degraded 10
[ "$(replica_state 2)" = faulted ] || fail "replica C is not faulted: $(jq -c .nexus "$disk.json")"
[ "$(vol_state '.state + " " + .replicas[2].state + " " + .attached.node')" = "degraded faulted $N" ] ||
  fail "volume get does not show the degraded replica: $(oc volume get kv --json | jq -c .)"
cmp <(dd if="$disk" bs=1M count=32 iflag=direct status=none) "$work/d1" || fail "degraded reads differ (first 32 MiB)"
missed=$(jq '.nexus.replicas[2].missed_bytes' "$disk.json")
[ "$missed" -gt 0 ] && [ "$missed" -le $((64 << 20)) ] ||
  fail "replica C should miss at most the 64 MiB fio wrote, missed $missed"
[ "$(jq '.nexus.replicas[0].missed_bytes + .nexus.replicas[1].missed_bytes' "$disk.json")" = 0 ] ||
  fail "the live replicas are marked behind: $(jq -c .nexus "$disk.json")"
echo "replica C misses $((missed >> 20)) MiB"

step "$C back: rebuilt while the disk is written; each replica alone reads the same bytes"
restart_c
head -c $((8 << 20)) /dev/urandom > "$work/d3"
dd if="$work/d3" of="$disk" bs=1M seek=128 oflag=direct conv=notrunc status=none
wait_state online 30
# C also missed the 8 MiB written just now if they landed before its probe.
copied=$(grep -o 'rebuilt: [0-9]* MiB' "$log" | tail -1 | grep -o '[0-9]*')
[ -n "$copied" ] && [ "$copied" -ge $((missed >> 20)) ] && [ "$copied" -le $(((missed >> 20) + 8)) ] ||
  fail "the rebuild did not copy only what C missed ($((missed >> 20)) MiB, +8 if the last write came first): $(grep rebuil "$log" | tail -2)"
grep "rebuilt:" "$log" | tail -1
oc disk detach kv --node "$N" >/dev/null
for side in a b c; do
  uri=URI_${side^^}
  oc disk attach "${!uri}" --node "$N" --name "kv-$side" >/dev/null
  md5sum < "/run/offcore/$N/disks/kv-$side" | cut -d' ' -f1 > "$work/sum$side"
  oc disk detach "kv-$side" --node "$N" >/dev/null
done
cmp -s "$work/suma" "$work/sumb" && cmp -s "$work/suma" "$work/sumc" ||
  fail "the replicas differ after the rebuild: A $(cat "$work/suma") B $(cat "$work/sumb") C $(cat "$work/sumc")"

step "fencing: a second node attaching the same replicas is refused while the first holds them"
attach
N2=nz$ID
netns_add "h$N2"
node_up "$N2" --host-netns "h$N2" >/dev/null
out=$(oc disk attach "$URI_B" --replica "$URI_A" --node "$N2" --name kv2 --nexus-id other 2>&1) &&
  fail "node $N2 attached replicas node $N is writing: $out"
grep -q "in use by node $N" <<<"$out" || fail "the refusal does not name the holder: $out"
[ ! -e "/run/offcore/$N2/disks/kv2.json" ] || fail "a refused attach left a disk record on $N2"
out=$(oc volume delete kv 2>&1) && fail "deleted a volume node $N has attached: $out"
grep -q "in use by node $N" <<<"$out" || fail "unclear refusal to delete an attached volume: $out"
oc disk detach kv --node "$N" >/dev/null
oc disk attach "$URI_B" --replica "$URI_A" --node "$N2" --name kv2 --nexus-id other --fast-io-fail 1 >/dev/null ||
  fail "node $N2 could not attach the replicas after $N detached them"
oc disk detach kv2 --node "$N2" >/dev/null
oc dpu down --name "$N2" >/dev/null

step "a replica behind across a restart of the disk is not read until rebuilt"
attach
kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null || true
head -c $((16 << 20)) /dev/urandom > "$work/d4"
dd if="$work/d4" of="$disk" bs=1M seek=160 oflag=direct conv=notrunc status=none
wait_state degraded 10
oc disk detach kv --node "$N" >/dev/null
restart_c
attach
# The journal names C behind: reads come from A and B alone (C, if read,
# would return the old bytes of 160-176 MiB; reads spread over replicas).
for _ in 1 2 3 4 5 6; do
  cmp <(dd if="$disk" bs=1M skip=160 count=16 iflag=direct status=none) "$work/d4" ||
    fail "read stale data after the restart (C served reads before its rebuild)"
done
wait_state online 30
oc disk detach kv --node "$N" >/dev/null

step "the disk restarts with a storage host down; the replica behind is not read until rebuilt"
attach
kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null || true
head -c $((16 << 20)) /dev/urandom > "$work/d6"
dd if="$work/d6" of="$disk" bs=1M seek=224 oflag=direct conv=notrunc status=none
wait_state degraded 10
oc disk detach kv --node "$N" >/dev/null
attach  # C is still down
[ "$(nexus_state)" = degraded ] || fail "a disk started without C is not degraded: $(jq -c .nexus "$disk.json")"
cmp <(dd if="$disk" bs=1M skip=224 count=16 iflag=direct status=none) "$work/d6" || fail "reads differ with C down"
head -c $((8 << 20)) /dev/urandom > "$work/d7"
dd if="$work/d7" of="$disk" bs=1M seek=240 oflag=direct conv=notrunc status=none
oc disk detach kv --node "$N" >/dev/null
out=$(oc volume snapshot kv kstale 2>&1) && fail "snapshot with a replica behind: $out"
grep -q "behind by" <<<"$out" || fail "unclear refusal to snapshot with a replica behind: $out"
attach
restart_c
# C is behind: reads come from A and B alone until it is rebuilt.
for _ in 1 2 3 4 5 6; do
  cmp <(dd if="$disk" bs=1M skip=224 count=16 iflag=direct status=none) "$work/d6" ||
    fail "read stale data while C came back (C served reads before its rebuild)"
  cmp <(dd if="$disk" bs=1M skip=240 count=8 iflag=direct status=none) "$work/d7" ||
    fail "read stale data while C came back (C served reads before its rebuild)"
done
out=$(oc volume snapshot kv ks 2>&1) && fail "snapshot of a volume in use: $out"
grep -q "detach volume kv first" <<<"$out" || fail "unclear refusal to snapshot a volume in use: $out"
wait_state online 30
oc disk detach kv --node "$N" >/dev/null
[ "$(vol_state '.state + " " + (.attached | tostring)')" = "online null" ] || fail "volume get after detach: $(oc volume get kv --json)"

step "snapshot, clone and resize act on every replica"
oc volume snapshot kv ks >/dev/null
oc volume clone ks kc >/dev/null
oc volume resize kc --size 384M >/dev/null
oc disk attach --volume kc --node "$N" --fast-io-fail 1 >/dev/null
kc=/run/offcore/$N/disks/kc
[ "$(stat -c %s "$kc")" = $((384 << 20)) ] || fail "the resized clone is $(stat -c %s "$kc") bytes"
cmp <(dd if="$kc" bs=1M skip=224 count=16 iflag=direct status=none) "$work/d6" || fail "the clone lacks the volume's data"
head -c $((4 << 20)) /dev/urandom > "$work/d8"
dd if="$work/d8" of="$kc" bs=1M seek=300 oflag=direct conv=notrunc status=none  # past the old end
cmp <(dd if="$kc" bs=1M skip=300 count=4 iflag=direct status=none) "$work/d8" || fail "the grown clone's new end differs"
[ "$(jq -r '.nexus.state' "$kc.json")" = online ] || fail "the clone's nexus: $(jq -c .nexus "$kc.json")"
oc disk detach kc --node "$N" >/dev/null
oc disk attach --volume ks --node "$N" >/dev/null
ks=/run/offcore/$N/disks/ks
dd if="$work/d8" of="$ks" bs=1M count=1 oflag=direct conv=notrunc status=none 2>/dev/null &&
  fail "wrote to a snapshot"
[ "$(jq -r '.nexus.state' "$ks.json")" = online ] || fail "a refused write to a snapshot faulted replicas: $(jq -c .nexus "$ks.json")"
oc disk detach ks --node "$N" >/dev/null
oc volume delete kc >/dev/null
oc volume delete kv >/dev/null  # the volume goes before its snapshot (the store keeps it as the snapshot's child)
oc volume delete ks >/dev/null
for g in "$A" "$B" "$C"; do
  [ "$(oc volume list --target "$g" --json | jq length)" = 0 ] || fail "volume delete left a replica on $g"
done
[ ! -e "$work/cluster/nexus/kv.json" ] || fail "volume delete left the nexus journal"
echo "PASS"
