#!/usr/bin/env bash
# Fabric hosts: add, list, exec, reachability from a node's SoC, del.
source "$(dirname "$0")/lib.sh"
H=st$ID
N=fb$ID
netns_add "h$N"
cleanup "\"$OFFCORE\" fabric host del $H"

oc fabric host add "$H" --ip 10.77.1.250/16
oc fabric host list --json | jq -e --arg h "$H" '.[] | select(.name==$h and .ip=="10.77.1.250/16")' >/dev/null \
  || fail "host not listed"
[ "$(oc fabric exec "$H" -- cat /proc/net/dev | grep -c eth0)" = 1 ] || fail "exec does not run in the host"
expect_fail "already exists" oc fabric host add "$H"
expect_fail "already used" oc fabric host add "x$ID" --ip 10.77.1.250
expect_fail "bad fabric host name" oc fabric host add "NO"
expect_fail "no fabric host" oc fabric exec "none$ID" -- true

node_up "$N" --host-netns "h$N"
oc dpu exec --name "$N" --domain soc -- ping -c 2 -i 0.2 -W 1 10.77.1.250

oc fabric host del "$H"
! ip netns list | grep -qw "ocf-$H" || fail "host netns left"
oc fabric host del "$H"   # idempotent
