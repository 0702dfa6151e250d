#!/usr/bin/env bash
# `offcore demo --only storage,images,svc,mesh --cluster etcd`: the demo
# starts an etcd member on a fabric host, its agents keep the cluster state
# there (its volume commands the volumes' records, journals and claims, its
# CSI plugins their catalog, its image conversion the image catalog); the
# takeover step shows a mirrored volume taken over from a frozen node; the
# EIP step shows an EIP moving off a node that dies within its lease
# (node_expiry_ms, 5 s by default) and the state read over both wires; the
# mesh step runs with the mesh config and cluster view in etcd; everything
# it made is gone afterwards, etcd included.
source "$(dirname "$0")/lib.sh"
command -v etcd >/dev/null || fail "etcd missing: run scripts/setup.sh"
D=de$ID
cleanup "\"$OFFCORE\" dpu down --name $D"
cleanup "\"$OFFCORE\" dpu down --name ${D:0:6}-y"
cleanup "\"$OFFCORE\" dpu down --name ${D:0:6}-v"
for h in etc fc x-h ext; do cleanup "\"$OFFCORE\" fabric host del ${D:0:6}-$h"; done
before=$(ip netns list | awk '{print $1}' | sort)
scratch_before=$(ls -d /var/tmp/offcore-demo-* 2>/dev/null | sort || true)
log=$(mktemp /tmp/oc-demo-etcd-XXXX); cleanup "rm -f $log"
oc demo --name "$D" --only storage,images,svc,mesh --cluster etcd >"$log" 2>&1 || { tail -30 "$log"; fail "demo --cluster etcd failed"; }
grep -q "cluster state: an etcd member on fabric host ${D:0:6}-etc" "$log" || fail "no etcd member line"
for s in storage mirror takeover csi; do
  grep -q -- "-- step $s: done" "$log" || { grep -A12 "step $s\|[0-9]\. .*$s" "$log" | tail -12; fail "the $s step did not finish on etcd"; }
done
line=$(grep "took the volume over" "$log") || fail "no takeover line"
echo "$line"
took=$(echo "$line" | sed -n 's/.* over \([0-9.]*\) s later.*/\1/p')
# The claims' TTL is 6 s: not before it ran out (the frozen node held them), nor long after.
awk -v t="$took" 'BEGIN { exit !(t >= 4.0 && t <= 12.0) }' || fail "the takeover came after $took s, not around the 6 s TTL"
grep -q "is refused (\"replica .* is in use by node ${D:0:6}-v (disk" "$log" || fail "the writer's claims did not refuse the demo node"
grep -q "its restart is refused (\"replica .* is in use by node $D (disk" "$log" || fail "the woken node's restart was not refused"
grep -q "image convert .* catalog etcd://" "$log" || { grep -A20 "step images" "$log" | tail -20; fail "the image catalog is not in etcd"; }
grep -q -- "-- step images: done" "$log" || fail "the images step did not finish on etcd"
line=$(grep "EIP .* holds it" "$log") || { tail -20 "$log"; fail "no EIP move line"; }
echo "$line"
held=$(echo "$line" | sed -n 's/.* holds it \([0-9.]*\) s after the kill.*/\1/p')
[ -n "$held" ] || fail "no time in: $line"
# The lease is 5 s; the move cannot come before it (the dead node held the claim) nor long after.
awk -v t="$held" 'BEGIN { exit !(t >= 4.0 && t <= 8.0) }' || fail "the EIP moved after $held s, not around the 5 s lease"
grep -q -- "-- step eip: done" "$log" || fail "the eip step did not finish"
# The state read over both wires, gRPC (offcore's) beside the gateway.
grep "read over etcd's gRPC API in [0-9.]* ms, over its HTTP/JSON gateway in [0-9.]* ms" "$log" ||
  fail "no gRPC vs gateway line"
# The mesh step with its config and cluster view in etcd: proxies on two nodes, mTLS, the 80/20 split.
grep -q -- "-- step mesh: done" "$log" || { grep -A20 "step mesh" "$log" | tail -20; fail "the mesh step did not finish on etcd"; }
grep -q "the mesh CA both nodes' keepers sign with is one key in etcd (/offcore/mesh-ca/v1/ca" "$log" || fail "the mesh CA is not in etcd"
after=$(ip netns list | awk '{print $1}' | sort)
[ "$before" = "$after" ] || fail "network namespaces left: $(comm -13 <(echo "$before") <(echo "$after"))"
oc fabric host list --json | jq -e --arg p "${D:0:6}-" '[.[] | select(.name | startswith($p))] | length == 0' >/dev/null ||
  fail "fabric hosts left: $(oc fabric host list)"
! pgrep -f "etcd --name ${D:0:6}-etc" >/dev/null || fail "the demo's etcd is still running"
[ "$(ls -d /var/tmp/offcore-demo-* 2>/dev/null | sort || true)" = "$scratch_before" ] || fail "scratch dir left"
