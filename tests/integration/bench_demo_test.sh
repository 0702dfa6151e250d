#!/usr/bin/env bash
# The README's main job and the bench framework run end to end.
source "$(dirname "$0")/lib.sh"
out=$(mktemp -d); cleanup "rm -rf $out"

step "offcore demo"
D=dm$ID
cleanup "\"$OFFCORE\" dpu down --name $D"
cleanup "\"$OFFCORE\" fabric host del ${D:0:6}-ext"
oc demo --name "$D" --only foundation | tee "$out/demo.log"  # the other parts: demo_test.sh
grep -q "restarts 1" "$out/demo.log" || fail "demo did not show a restart"
grep -q "gone" "$out/demo.log" || fail "demo did not tear down"
assert_node_gone "$D"

step "offcore bench dpu --quick writes a side-by-side report"
oc bench dpu --quick --out "$out"
[ -s "$out/dpu.md" ] || fail "no report"
grep -q "| dpu up | ms |" "$out/dpu.md" || fail "report lacks the up row"
grep -q "×" "$out/dpu.md" || fail "report lacks a ratio"

step "offcore bench control-plane --quick: etcd beside the directory store, and nothing left running"
command -v etcd >/dev/null || fail "etcd missing: run scripts/setup.sh"
oc bench control-plane --quick --out "$out"
grep -q "| change programmed on every node, p50 (10 nodes) | ms |" "$out/control-plane.md" || fail "no propagation row"
grep -q "| \`svc apply -f\` of 1000 Services (the command) | ms |" "$out/control-plane.md" || fail "no apply row"
! pgrep -f "etcd --name b --data-dir /tmp/oc-bench-cp-" >/dev/null || fail "the benchmark left etcd running"
! ls -d /tmp/oc-bench-cp-* >/dev/null 2>&1 || fail "the benchmark left its scratch dir"
