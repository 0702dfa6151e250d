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
