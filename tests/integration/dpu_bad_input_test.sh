#!/usr/bin/env bash
# Bad input gets one clear line and changes nothing.
source "$(dirname "$0")/lib.sh"
N=bi$ID
netns_add "h$N"

nothing_created() {
  assert_node_gone "$1"
}

step "bad names"
expect_fail "bad node name" oc dpu up --name "Bad_Name"
expect_fail "longer than 10" oc dpu up --name "abcdefghijk"
nothing_created "abcdefghijk"

step "cpu lists that do not exist, or overlap"
expect_fail "does not exist" oc dpu up --name "$N" --soc-cpus 99 --host-netns "h$N"
nothing_created "$N"
expect_fail "bad cpu list" oc dpu up --name "$N" --soc-cpus 1-x --host-netns "h$N"
nothing_created "$N"
expect_fail "in both" oc dpu up --name "$N" --soc-cpus 0 --host-cpus 0 --host-netns "h$N"
nothing_created "$N"
expect_fail "bad size" oc dpu up --name "$N" --mem 12Q --host-netns "h$N"
nothing_created "$N"

step "a second up of an existing node changes nothing"
node_up "$N" --host-netns "h$N"
agent=$(status_field "$N" .agent.pid)
expect_fail "already exists" oc dpu up --name "$N" --host-netns "h$N"
[ "$(status_field "$N" .agent.pid)" = "$agent" ] || fail "the agent changed"
[ "$(status_field "$N" .agent.state)" = running ] || fail "the agent stopped"

step "not root"
expect_fail "needs root" setpriv --reuid=65534 --regid=65534 --clear-groups "$OFFCORE" dpu up --name "x$ID"
expect_fail "needs root" setpriv --reuid=65534 --regid=65534 --clear-groups "$OFFCORE" dpu down --name "$N"
[ "$(status_field "$N" .agent.state)" = running ] || fail "a refused down hurt the node"

step "a missing dependency"
bin=$(mktemp -d); cleanup "rm -rf $bin"
ln -s "$(command -v ip)" "$bin/ip"   # ip present, nft missing
expect_fail "'nft' is missing" env PATH="$bin" "$OFFCORE" dpu up --name "y$ID" --host-netns "h$N"
nothing_created "y$ID"

step "unknown node and domain"
expect_fail "no node" oc dpu exec --name "zz$ID" --domain soc -- true
expect_fail "unknown domain" oc dpu exec --name "$N" --domain gpu -- true
