#!/usr/bin/env bash
# `offcore demo --only images,svc,mesh --cluster etcd`: the demo starts an
# etcd member on a fabric host, its agents keep the cluster state there (and
# its image conversion the image catalog), and the
# EIP step shows an EIP moving off a node that dies within its lease
# (node_expiry_ms, 5 s by default) and the state read over both wires; the
# mesh step runs with the mesh config and cluster view in etcd; everything
# it made is gone afterwards, etcd included.
source "$(dirname "$0")/lib.sh"
command -v etcd >/dev/null || fail "etcd missing: run scripts/setup.sh"
D=de$ID
cleanup "\"$OFFCORE\" dpu down --name $D"
cleanup "\"$OFFCORE\" dpu down --name ${D:0:6}-y"
for h in etc fc x-h ext; do cleanup "\"$OFFCORE\" fabric host del ${D:0:6}-$h"; done
before=$(ip netns list | awk '{print $1}' | sort)
scratch_before=$(ls -d /var/tmp/offcore-demo-* 2>/dev/null | sort || true)
log=$(mktemp /tmp/oc-demo-etcd-XXXX); cleanup "rm -f $log"
oc demo --name "$D" --only images,svc,mesh --cluster etcd >"$log" 2>&1 || { tail -30 "$log"; fail "demo --cluster etcd failed"; }
grep -q "cluster state: an etcd member on fabric host ${D:0:6}-etc" "$log" || fail "no etcd member line"
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
after=$(ip netns list | awk '{print $1}' | sort)
[ "$before" = "$after" ] || fail "network namespaces left: $(comm -13 <(echo "$before") <(echo "$after"))"
oc fabric host list --json | jq -e --arg p "${D:0:6}-" '[.[] | select(.name | startswith($p))] | length == 0' >/dev/null ||
  fail "fabric hosts left: $(oc fabric host list)"
! pgrep -f "etcd --name ${D:0:6}-etc" >/dev/null || fail "the demo's etcd is still running"
[ "$(ls -d /var/tmp/offcore-demo-* 2>/dev/null | sort || true)" = "$scratch_before" ] || fail "scratch dir left"
