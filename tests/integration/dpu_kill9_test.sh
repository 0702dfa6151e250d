#!/usr/bin/env bash
# down cleans up after kill -9 of the agent, after a failed up, and after an
# up that was itself killed half way.
source "$(dirname "$0")/lib.sh"
N=k9$ID
netns_add "h$N"

step "kill -9 of the agent and its watchdog (the whole SoC control plane), then down"
node_up "$N" --host-netns "h$N"
oc dpu service add --name "$N" --service orphan -- sleep 3600
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[0].pid')
mkdir -p "/run/offcore/$N/disks/d0"
mount -t tmpfs "oc-test-$ID" "/run/offcore/$N/disks/d0"
cleanup "umount -l /run/offcore/$N/disks/d0"
agent=$(status_field "$N" .agent.pid)
dog=$(status_field "$N" .watchdog.pid)
kill -9 "$dog" "$agent"
sleep 0.2
[ "$(status_field "$N" .agent.state)" = unreachable ] || fail "status should report the agent unreachable"
oc dpu down --name "$N"
assert_node_gone "$N"
! alive "$svc_pid" || fail "service process $svc_pid survived down"
! alive "$agent" || fail "agent survived"
! alive "$dog" || fail "watchdog survived"

step "an up that fails half way rolls back"
# A stale host-VF name in the host namespace makes up fail after the
# cgroups, the SoC namespace and the uplink already exist.
ip -n "h$N" link add "och-$N" type dummy 2>/dev/null || ip -n "h$N" link add "och-$N" type veth peer name "x$ID"
expect_fail "rolled back" oc dpu up --name "$N" --host-netns "h$N"
assert_node_gone "$N"
ip -n "h$N" link del "och-$N" 2>/dev/null || true

step "an up killed part way, then down"
for delay in 0.01 0.03 0.06; do
  # The binary itself, not the oc() wrapper: `oc ... &` would fork a
  # subshell, kill -9 would hit that, and the real up would race the down.
  "$OFFCORE" dpu up --name "$N" --host-netns "h$N" >/dev/null 2>&1 &
  up_pid=$!
  sleep "$delay"
  kill -9 "$up_pid" 2>/dev/null || true
  wait "$up_pid" 2>/dev/null || true
  oc dpu down --name "$N"
  assert_node_gone "$N"
done
