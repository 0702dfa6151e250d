#!/usr/bin/env bash
# The agent's watchdog (the SoC's init): a killed agent is back, with every
# service adopted, within 2 s and without anyone running `dpu agent restart`;
# a crash loop backs off; a lost watchdog is reported and restored by
# `dpu agent restart`; `dpu down` leaves neither behind.
source "$(dirname "$0")/lib.sh"
N=wd$ID
netns_add "h$N"
node_up "$N" --host-netns "h$N"
svc_pid() { oc dpu service list --name "$N" --json | jq -r --arg s "$1" '.[] | select(.name==$s) | .pid'; }
now_ms() { echo $(($(date +%s%N) / 1000000)); }

oc dpu service add --name "$N" --service keeper -- sleep 3600
keeper=$(svc_pid keeper)
alive "$keeper" || fail "keeper did not start"
dog=$(status_field "$N" .watchdog.pid)
[ "$(status_field "$N" .watchdog.state)" = running ] && alive "$dog" || fail "dpu up started no watchdog"
cg=$(status_field "$N" .domains.soc.cgroup)
grep -q "$cg\$" "/proc/$dog/cgroup" || fail "the watchdog is not in the SoC cgroup $cg: $(cat "/proc/$dog/cgroup")"

# Kills the running agent and prints how long until a new one answers.
kill_and_time() {
  local agent new t0
  agent=$(status_field "$N" .agent.pid)
  alive "$agent" || fail "no agent to kill"
  t0=$(now_ms)
  kill -9 "$agent"
  for _ in $(seq 100); do
    new=$(status_field "$N" .agent.pid)
    if [ "$new" != "$agent" ] && [ "$(status_field "$N" .agent.state)" = running ]; then
      echo $(($(now_ms) - t0))
      return
    fi
    sleep 0.05
  done
  fail "no new agent 5 s after kill -9 of $agent"
}

step "kill -9 of the agent: back and adopted within 2 s"
ms=$(kill_and_time)
echo "agent back after $ms ms"
assert_cmp "$ms" "<=" 2000
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper not adopted (pid $(svc_pid keeper), was $keeper)"
grep -q "died; starting a new one" "/run/offcore/$N/agent.log" || fail "the watchdog logged nothing"

step "the new agent supervises what it adopted"
kill "$keeper"
for _ in $(seq 100); do
  p=$(svc_pid keeper)
  [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$keeper" ] && alive "$p" && break
  sleep 0.05
done
[ "$p" != "$keeper" ] && alive "$p" || fail "keeper was not restarted by the adopted agent"
keeper=$p

step "a second crash right after: still back within 2 s (backoff starts small)"
ms=$(kill_and_time)
echo "agent back after $ms ms"
assert_cmp "$ms" "<=" 2000
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper not adopted after the second crash"

step "a killed watchdog is reported; dpu agent restart starts both"
dog=$(status_field "$N" .watchdog.pid)
kill -9 "$dog"
for _ in $(seq 50); do alive "$dog" || break; sleep 0.05; done
[ "$(status_field "$N" .watchdog.state)" = gone ] || fail "status should report the watchdog gone"
oc dpu status --name "$N" | grep -q "watchdog is gone" || fail "status text does not say the watchdog is gone"
oc dpu agent restart --name "$N"
dog2=$(status_field "$N" .watchdog.pid)
[ "$dog2" != "$dog" ] && alive "$dog2" || fail "dpu agent restart did not start a watchdog"
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper lost by the restart"
ms=$(kill_and_time)
assert_cmp "$ms" "<=" 2000

step "dpu down stops the watchdog first: nothing comes back"
agent=$(status_field "$N" .agent.pid)
oc dpu down --name "$N"
assert_node_gone "$N"
! alive "$dog2" || fail "the watchdog survived down"
! alive "$agent" || fail "the agent survived down"
echo "PASS"
