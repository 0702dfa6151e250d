#!/usr/bin/env bash
# `volume replica add/remove/move` (issue 17): a replica of a mirrored,
# DH-HMAC-CHAP-protected volume moves to another storage host while fio
# writes it with verify: the disk hands over to a `disk serve` with the new
# replica list (no I/O error), the new replica is rebuilt whole, the old
# one leaves and its copy is deleted; then every replica alone reads the
# same bytes. Refusals: a second replica on one host, a replica the volume
# does not have, the last replica, and a removal while no other replica is
# in sync.
source "$(dirname "$0")/lib.sh"
N=rm$ID
A=gra$ID B=grb$ID C=grc$ID
work=$(mktemp -d /tmp/oc-rm-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateways_up "$work" "$A" "$B" "$C"
export OFFCORE_CONFIG=$work/config.json
echo "{\"cluster_dir\": \"$work/cluster\"}" > "$OFFCORE_CONFIG"
node_up "$N" --host-netns "h$N" >/dev/null
HOSTNQN="nqn.2026-11.io.offcore:node:$N"
disk=/run/offcore/$N/disks/kv

step "a 2-replica volume on $A and $B, only node $N allowed (DH-HMAC-CHAP), attached and written"
secret=$(oc volume create kv --size 256M --replicas 2 --targets "$A,$B" --allow-host "$HOSTNQN" --json |
  jq -r '.new_secrets[0].dhchap_secret')
[ -n "$secret" ] && [ "$secret" != null ] || fail "volume create made no secret"
oc disk attach --volume kv --node "$N" --fast-io-fail 1 --dhchap-secret "$secret" >/dev/null
cleanup "\"$OFFCORE\" disk detach kv --node $N --force"
head -c $((32 << 20)) /dev/urandom > "$work/d1"
dd if="$work/d1" of="$disk" bs=1M oflag=direct conv=notrunc status=none

step "refused: a second replica on one storage host; a replica the volume does not have"
expect_fail "already holds a replica" oc volume replica add kv --target "$A"
expect_fail "has no replica on $C" oc volume replica remove kv --target "$C"

step "move the replica on $B to $C under fio --verify: 0 errors, rebuilt whole, $B's copy deleted"
pid0=$(jq -r .pid "$disk.json")
fio --name=move --filename="$disk" --offset=64M --size=64M --rw=randwrite --bs=16k --rate=12m --ioengine=libaio \
  --iodepth=16 --direct=1 --verify=crc32c --verify_fatal=1 --verify_state_save=0 --randrepeat=0 \
  --output-format=json --output="$work/fio.json" > "$work/fio.out" 2>&1 &
fio_pid=$!
cleanup "kill $fio_pid"
sleep 1
oc volume replica move kv --from "$B" --to "$C" > "$work/move.out" 2>&1 || fail "move failed: $(cat "$work/move.out")"
grep -q "moved from $B to $C while in use" "$work/move.out" || fail "move said: $(cat "$work/move.out")"
alive "$fio_pid" || fail "fio ended before the move did; make its job longer: $(tail -3 "$work/fio.out")"
rc=0; wait "$fio_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "fio failed across the move (rc $rc): $(tail -5 "$work/fio.out")"
[ "$(jq '[.jobs[].error] | add' "$work/fio.json")" -eq 0 ] || fail "fio reported errors across the move"
[ "$(jq -r .pid "$disk.json")" != "$pid0" ] || fail "the disk service was not handed over"
[ "$(jq -r '[.nexus.replicas[].state] | join(",")' "$disk.json")" = "online,online" ] ||
  fail "after the move: $(jq -c .nexus "$disk.json")"
[ "$(oc volume get kv --json | jq -r '[.replicas[].target] | join(",")')" = "$A,$C" ] ||
  fail "volume get after the move: $(oc volume get kv --json | jq -c .replicas)"
[ "$(oc volume list --target "$B" --json | jq length)" = 0 ] || fail "the copy on $B was not deleted"
grep -q "rebuilt: 256 MiB" "/run/offcore/$N/disk-kv.log" || fail "the new replica was not rebuilt whole: $(grep rebuilt "/run/offcore/$N/disk-kv.log")"
cmp -n $((32 << 20)) "$work/d1" "$disk" || fail "the data written before the move differs"

step "each replica alone reads the same bytes"
oc disk detach kv --node "$N" >/dev/null
URI_A=$(oc volume get kv --json | jq -r '.replicas[0].uri')
URI_C=$(oc volume get kv --json | jq -r '.replicas[1].uri')
for side in a c; do
  uri=URI_${side^^}
  oc disk attach "${!uri}" --node "$N" --name "kv-$side" --dhchap-secret "$secret" >/dev/null
  md5sum < "/run/offcore/$N/disks/kv-$side" | cut -d' ' -f1 > "$work/sum$side"
  oc disk detach "kv-$side" --node "$N" >/dev/null
done
cmp -s "$work/suma" "$work/sumc" || fail "the replicas differ after the move: $(cat "$work/suma" "$work/sumc")"

step "detached: add on $B (behind by its journal until an attach rebuilds it), then removals"
expect_fail "give it with --secret-file" oc volume replica add kv --target "$B"
[ "$(oc volume list --target "$B" --json | jq length)" = 0 ] || fail "a refused add left a volume on $B"
printf 'dhchap_secret=%s\n' "$secret" > "$work/secret"; chmod 600 "$work/secret"
oc volume replica add kv --target "$B" --secret-file "$work/secret" >/dev/null
[ "$(jq -r --arg b "$B" '.replicas[] | select(.name | contains($b)) | .state' "$work/cluster/nexus/kv.json")" = faulted ] ||
  fail "the journal does not hold the detached new replica behind: $(cat "$work/cluster/nexus/kv.json")"
oc volume replica remove kv --target "$A" >/dev/null
expect_fail "no other replica of kv is in sync" oc volume replica remove kv --target "$C"
oc volume replica remove kv --target "$B" >/dev/null
expect_fail "last replica" oc volume replica remove kv --target "$C"
[ "$(oc volume get kv --json | jq -r '[.replicas[].target] | join(",")')" = "$C" ] || fail "volume get: $(oc volume get kv --json)"
oc disk attach --volume kv --node "$N" --dhchap-secret "$secret" >/dev/null
cmp -n $((32 << 20)) "$work/d1" "$disk" || fail "the one replica left lost the data"
oc disk detach kv --node "$N" >/dev/null

step "a one-replica volume in use becomes a mirror: its plain disk hands over to a nexus, the new replica rebuilt"
oc volume create one --size 64M --replicas 1 --targets "$A" >/dev/null
oc disk attach --volume one --node "$N" >/dev/null
cleanup "\"$OFFCORE\" disk detach one --node $N --force"
one=/run/offcore/$N/disks/one
[ "$(jq -r 'has("nexus")' "$one.json")" = false ] || fail "a one-replica volume attached with a nexus"
head -c $((16 << 20)) /dev/urandom > "$work/d2"
dd if="$work/d2" of="$one" bs=1M oflag=direct conv=notrunc status=none
oc volume replica add one --target "$B" >/dev/null
[ "$(jq -r '[.nexus.replicas[].state] | join(",")' "$one.json")" = "online,online" ] ||
  fail "the plain disk did not become a mirror with both online: $(jq -c . "$one.json")"
cmp -n $((16 << 20)) "$work/d2" "$one" || fail "data changed across the handover to a nexus"
oc volume replica remove one --target "$A" >/dev/null
[ "$(jq -r 'has("nexus")' "$one.json")" = false ] || fail "down to one replica, the disk still runs a nexus"
cmp -n $((16 << 20)) "$work/d2" "$one" || fail "data changed when the replica on $A left"
oc disk detach one --node "$N" >/dev/null
