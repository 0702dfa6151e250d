#!/usr/bin/env bash
# Two nodes coexist; their SoCs reach each other over the fabric.
source "$(dirname "$0")/lib.sh"
A=ta$ID
B=tb$ID
netns_add "h$A"
netns_add "h$B"
node_up "$A" --host-netns "h$A"
node_up "$B" --host-netns "h$B"

ipa=$(status_field "$A" .network.uplink.ip); ipa=${ipa%/*}
ipb=$(status_field "$B" .network.uplink.ip); ipb=${ipb%/*}
[ "$ipa" != "$ipb" ] || fail "both nodes got $ipa"

step "a's SoC pings b's SoC, and back"
oc dpu exec --name "$A" --domain soc -- ping -c 3 -i 0.2 -W 1 "$ipb"
oc dpu exec --name "$B" --domain soc -- ping -c 3 -i 0.2 -W 1 "$ipa"

step "nodes are listed and removed independently"
oc dpu list --json | jq -e --arg a "$A" --arg b "$B" '[.[].name] | index($a) != null and index($b) != null' >/dev/null \
  || fail "dpu list misses a node"
oc dpu down --name "$A"
assert_node_gone "$A"
[ "$(status_field "$B" .agent.state)" = running ] || fail "b hurt by a's down"
oc dpu exec --name "$B" --domain soc -- ip -o link show up0 | grep -q "state UP" || fail "b's uplink went down"
