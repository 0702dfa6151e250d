#!/usr/bin/env bash
# Replicated volumes with the cluster state in etcd (docs/ETCD.md,
# "Replicated volumes"): the record, the nexus journal and the replicas'
# claims are keys in a 3-member etcd on fabric hosts, nothing under the
# cluster directory. A second node is refused while the first holds the
# claims; a degraded write is in the etcd journal; the first node frozen
# (agent and disk service SIGSTOPped: no renewals), the second node's
# attach succeeds once the claims' lease ran out, starts with the replica
# the journal names behind, and rebuilds it; the frozen node woken up
# stops its disk at once and its restart is refused (no two writers).
source "$(dirname "$0")/lib.sh"
N1=ne$ID N2=nf$ID
A=gea$ID B=geb$ID
TTL=6
T=$(mktemp -d /var/tmp/oc-nxe-XXXX); cleanup "rm -rf $T"
etcd_cluster_up "$T/etcd" "ea$ID" "eb$ID" "ec$ID"
printf '{"cluster_dir": "%s/cluster", "cluster_store": "%s"}\n' "$T" "$ETCD_URL" > "$T/config.json"
export OFFCORE_CONFIG=$T/config.json
gateways_up "$T" "$A" "$B"

step "a volume made while the cluster state was a directory moves into etcd on first use"
printf '{"cluster_dir": "%s/cluster"}\n' "$T" > "$T/config-dir.json"
OFFCORE_CONFIG=$T/config-dir.json oc volume create old --size 64M --replicas 2 --targets "$A,$B" >/dev/null
[ -e "$T/cluster/volumes/old.json" ] || fail "the directory store did not record the volume"
netns_add "h$N1"
node_up "$N1" --host-netns "h$N1" >/dev/null
# With its host side in the root namespace, $N2's SoC is this shell's way
# to the fabric (etcd's members) for the CLI.
node_up "$N2" >/dev/null
d1=/run/offcore/$N1/disks/kv d2=/run/offcore/$N2/disks/kv

[ "$(oc volume list --replicated --json | jq -r '.[].name')" = old ] || fail "the directory's volume was not imported"
[ "$(etcdctl_c get --print-value-only /offcore/volumes/v1/records/old | jq -r .size_bytes)" = $((64 << 20)) ] ||
  fail "no imported record in etcd"
[ -e "$T/cluster/volumes.imported/old.json" ] && [ ! -e "$T/cluster/volumes" ] ||
  fail "the directory's records were not set aside: $(ls "$T/cluster")"
oc volume delete old >/dev/null
[ -z "$(etcdctl_c get --prefix --keys-only /offcore/volumes/v1/records/)" ] || fail "the imported volume came back"

step "the volume's record is a key in etcd, none in the cluster directory"
oc volume create kv --size 128M --replicas 2 --targets "$A,$B" >/dev/null
[ "$(etcdctl_c get --print-value-only /offcore/volumes/v1/records/kv | jq -r '.replicas | length')" = 2 ] ||
  fail "no record in etcd: $(etcdctl_c get --prefix --keys-only /offcore/volumes/)"
[ ! -e "$T/cluster/volumes" ] || fail "the record went to the cluster directory too: $(ls "$T/cluster/volumes")"
[ "$(oc volume list --replicated --json | jq -r '.[0].name')" = kv ] || fail "volume list does not read etcd"
out=$(oc volume create kv --size 128M --replicas 2 --targets "$A,$B" 2>&1) && fail "created kv twice: $out"
grep -q "exists" <<<"$out" || fail "unclear refusal of a second kv: $out"

step "attached on $N1: the claims are keys under a lease; $N2 is refused and told who holds them"
oc disk attach --volume kv --node "$N1" --fast-io-fail 1 --claim-ttl "$TTL" >/dev/null
cleanup "\"$OFFCORE\" disk detach kv --node $N1 --force"
[ "$(jq -r .journal "$d1.json")" = "etcd:kv" ] || fail "the disk's journal is $(jq -r .journal "$d1.json")"
claims=$(etcdctl_c get --prefix --keys-only /offcore/nexus/v1/claims/ | sed '/^$/d' | wc -l)
[ "$claims" = 2 ] || fail "expected 2 claim keys, found $claims"
etcdctl_c get --prefix /offcore/nexus/v1/claims/ -w json | jq -e '[.kvs[].lease] | all(. != null and . != 0)' \
  >/dev/null || fail "a claim key has no lease"
head -c $((32 << 20)) /dev/urandom > "$T/w1"
dd if="$T/w1" of="$d1" bs=1M oflag=direct conv=notrunc status=none
out=$(oc disk attach --volume kv --node "$N2" --fast-io-fail 1 --claim-ttl "$TTL" 2>&1) &&
  fail "node $N2 attached a volume $N1 is writing: $out"
grep -q "in use by node $N1 (disk kv)" <<<"$out" || fail "the refusal does not name the holder: $out"
out=$(oc volume snapshot kv ks 2>&1) && fail "snapshot of a volume in use: $out"
grep -q "detach volume kv first" <<<"$out" || fail "unclear refusal to snapshot: $out"

step "$B killed: a degraded write is in the etcd journal"
kill -9 "$B_PID"; wait "$B_PID" 2>/dev/null || true
head -c $((16 << 20)) /dev/urandom > "$T/w2"
dd if="$T/w2" of="$d1" bs=1M seek=64 oflag=direct conv=notrunc status=none
for _ in $(seq 100); do [ "$(jq -r .nexus.state "$d1.json")" = degraded ] && break; sleep 0.1; done
[ "$(jq -r .nexus.state "$d1.json")" = degraded ] || fail "not degraded: $(jq -c .nexus "$d1.json")"
etcdctl_c get --print-value-only /offcore/nexus/v1/journals/kv/head > "$T/journal.json"
[ "$(jq -r '.replicas[1].state' "$T/journal.json")" = faulted ] &&
  [ "$(jq '.replicas[1].missed | length' "$T/journal.json")" -gt 0 ] ||
  fail "the etcd journal does not hold $B behind: $(head -c 400 "$T/journal.json")"
[ ! -e "$T/cluster/nexus" ] || fail "a journal went to the cluster directory: $(ls -R "$T/cluster/nexus")"

step "$N1 frozen (no renewals): $N2 attaches once the lease ran out, with $B behind by the journal"
agent1=$(status_field "$N1" .agent.pid)
serve1=$(jq -r .pid "$d1.json")
[ -n "$agent1" ] && [ "$agent1" != null ] && alive "$serve1" || fail "no pids for $N1 ($agent1, $serve1)"
kill -STOP "$agent1" "$serve1"
cleanup "kill -CONT $agent1 $serve1 2>/dev/null"
t0=$(date +%s%N)
ok=
for _ in $(seq $((TTL * 4 + 20))); do
  if oc disk attach --volume kv --node "$N2" --fast-io-fail 1 --claim-ttl "$TTL" >"$T/attach2.out" 2>&1; then ok=1; break; fi
  grep -q "in use by node $N1" "$T/attach2.out" || fail "attach on $N2 failed otherwise: $(cat "$T/attach2.out")"
  sleep 0.5
done
[ -n "$ok" ] || fail "node $N2 never took the volume over: $(cat "$T/attach2.out")"
cleanup "\"$OFFCORE\" disk detach kv --node $N2 --force"
took=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "node $N2 took the volume over $took ms after $N1 froze (claim TTL $TTL s)"
[ "$took" -le $(( (TTL + 6) * 1000 )) ] || fail "the takeover took $took ms with a $TTL s TTL"
[ "$(jq -r '.nexus.replicas[1].state' "$d2.json")" = faulted ] ||
  fail "$N2's nexus does not know $B is behind: $(jq -c .nexus "$d2.json")"
cmp <(dd if="$d2" bs=1M count=32 iflag=direct status=none) "$T/w1" || fail "$N2 reads other bytes (0-32 MiB)"
cmp <(dd if="$d2" bs=1M skip=64 count=16 iflag=direct status=none) "$T/w2" || fail "$N2 reads other bytes (64-80 MiB)"
head -c $((8 << 20)) /dev/urandom > "$T/w3"
dd if="$T/w3" of="$d2" bs=1M seek=96 oflag=direct conv=notrunc status=none

step "$N1 woken: its disk stops at once and its restart is refused; nothing it holds lands"
kill -CONT "$agent1" "$serve1"
for _ in $(seq 50); do alive "$serve1" || break; sleep 0.1; done
alive "$serve1" && fail "the frozen node's disk service kept running after its claim ran out"
log1=/run/offcore/$N1/disk-kv.log
grep -q "claim may be lost" "$log1" || fail "the old disk did not say why it stopped: $(tail -3 "$log1")"
for _ in $(seq 100); do grep -q "in use by node $N2" "$log1" && break; sleep 0.1; done
grep -q "in use by node $N2" "$log1" || fail "the old disk's restart was not refused: $(tail -3 "$log1")"
oc disk detach kv --node "$N1" --force >/dev/null 2>&1 || true

step "$B back: rebuilt from the journal; it alone then reads what both nodes wrote"
GW_IP=$B_IP gateway_start "$B" "$T/b"; B_PID=$GW_PID
for _ in $(seq 300); do [ "$(jq -r .nexus.state "$d2.json")" = online ] && break; sleep 0.1; done
[ "$(jq -r .nexus.state "$d2.json")" = online ] || fail "not rebuilt: $(jq -c .nexus "$d2.json")"
oc disk detach kv --node "$N2" >/dev/null
[ -z "$(etcdctl_c get --prefix --keys-only /offcore/nexus/v1/claims/)" ] || fail "detach left claim keys"
[ "$(etcdctl_c get --print-value-only /offcore/nexus/v1/journals/kv/head | jq -r '[.replicas[].state] | join(",")')" = online,online ] ||
  fail "the journal after the rebuild: $(etcdctl_c get --print-value-only /offcore/nexus/v1/journals/kv/head | head -c 300)"
uri_b=$(oc volume get kv --json | jq -r '.replicas[1].uri')
oc disk attach "$uri_b" --node "$N2" --name kvb >/dev/null
cmp <(dd if="/run/offcore/$N2/disks/kvb" bs=1M skip=64 count=16 iflag=direct status=none) "$T/w2" ||
  fail "$B lacks the degraded write after its rebuild"
cmp <(dd if="/run/offcore/$N2/disks/kvb" bs=1M skip=96 count=8 iflag=direct status=none) "$T/w3" ||
  fail "$B lacks $N2's write after its rebuild"
oc disk detach kvb --node "$N2" >/dev/null

step "snapshot and delete act on etcd; nothing is left"
oc volume snapshot kv ks >/dev/null
[ "$(oc volume get ks --json | jq -r .parent)" = kv ] || fail "the snapshot's record: $(oc volume get ks --json)"
oc volume delete kv >/dev/null
oc volume delete ks >/dev/null
[ -z "$(etcdctl_c get --prefix --keys-only /offcore/volumes/v1/records/)" ] || fail "delete left records"
[ -z "$(etcdctl_c get --prefix --keys-only /offcore/nexus/v1/journals/)" ] || fail "delete left the journal"
echo "PASS"
