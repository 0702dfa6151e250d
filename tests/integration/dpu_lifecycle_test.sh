#!/usr/bin/env bash
# up / status / exec / services / API channel / down, with real namespaces and cgroups.
source "$(dirname "$0")/lib.sh"
N=lc$ID
netns_add "h$N"

step "up returns within 2 s, once the agent answers"
start=$(date +%s%N)
node_up "$N" --host-netns "h$N"
elapsed_ms=$(( ($(date +%s%N) - start) / 1000000 ))
echo "dpu up took $elapsed_ms ms"
assert_cmp "$elapsed_ms" "<" 2000 "dpu up latency"

step "status --json has the documented shape"
s=$(oc dpu status --name "$N" --json)
[ "$(jq -r .name <<<"$s")" = "$N" ] || fail "name"
[ "$(jq -r .domains.soc.cpus <<<"$s")" = "$(( $(nproc) - 1 ))" ] || fail "default soc cpus: $(jq -r .domains.soc.cpus <<<"$s")"
jq -e '.domains.soc.cpu_seconds | type == "number"' <<<"$s" >/dev/null || fail "soc cpu_seconds"
jq -e '.domains.host.memory_bytes | type == "number"' <<<"$s" >/dev/null || fail "host memory_bytes"
jq -e '.services | type == "array"' <<<"$s" >/dev/null || fail "services"
jq -e '.infra.host_share | type == "number"' <<<"$s" >/dev/null || fail "infra.host_share"
[ "$(jq -r .agent.state <<<"$s")" = running ] || fail "agent state"
oc dpu status --name "$N" | grep -q "^soc" || fail "human status has no soc row"

step "the agent runs in the SoC domain: its netns and cgroup"
agent=$(jq -r .agent.pid <<<"$s")
[ "$(readlink /proc/$agent/ns/net)" = "$(ip netns exec oc-$N-soc readlink /proc/self/ns/net)" ] || fail "agent netns"
grep -q "cpuacct:/offcore/$N/soc\|::/offcore/$N/soc" /proc/$agent/cgroup || fail "agent cgroup: $(cat /proc/$agent/cgroup)"
grep -q "^Cpus_allowed_list:\s*$(jq -r .domains.soc.cpus <<<"$s")$" /proc/$agent/status || fail "agent not pinned"

step "exec places work in each domain"
oc dpu exec --name "$N" --domain soc -- ip -o link show up0 >/dev/null || fail "soc exec does not see up0"
oc dpu exec --name "$N" --domain host -- ip -o link show "och-$N" >/dev/null || fail "host exec does not see its host-VF"
soc_cg=$(oc dpu exec --name "$N" --domain soc -- cat /proc/self/cgroup)
grep -q "/offcore/$N/soc" <<<"$soc_cg" || fail "soc exec cgroup: $soc_cg"
host_cg=$(oc dpu exec --name "$N" --domain host -- cat /proc/self/cgroup)
grep -q "/offcore/$N/host" <<<"$host_cg" || fail "host exec cgroup: $host_cg"
rc=0; oc dpu exec --name "$N" --domain soc -- sh -c 'exit 7' || rc=$?
[ "$rc" -eq 7 ] || fail "exec exit code $rc, want 7"

step "the API channel answers curl on the unix socket"
curl -sf --unix-socket "/run/offcore/$N/api.sock" http://offcore/v1/health | jq -e .ok >/dev/null || fail "health"
curl -sf --unix-socket "/run/offcore/$N/api.sock" http://offcore/metrics | grep -q '^offcore_agent_up{node="'"$N"'"} 1$' || fail "metrics"
code=$(curl -s -o /dev/null -w '%{http_code}' --unix-socket "/run/offcore/$N/api.sock" -X POST -d 'not json' http://offcore/v1/services)
[ "$code" = 400 ] || fail "malformed service body gave HTTP $code"

step "services: supervised in the SoC, restarted after a crash"
oc dpu service add --name "$N" --service sleeper -- sleep 3600
pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="sleeper") | .pid')
grep -q "/offcore/$N/soc" /proc/$pid/cgroup || fail "service not in the soc cgroup"
kill -9 "$pid"
for _ in $(seq 50); do
  sv=$(oc dpu service list --name "$N" --json | jq -c '.[] | select(.name=="sleeper")')
  [ "$(jq -r .restarts <<<"$sv")" = 1 ] && [ "$(jq -r .state <<<"$sv")" = running ] && break
  sleep 0.1
done
[ "$(jq -r .restarts <<<"$sv")" = 1 ] || fail "service not restarted: $sv"
[ "$(jq -r .pid <<<"$sv")" != "$pid" ] || fail "same pid after restart"
oc dpu status --name "$N" --json | jq -e '.services[] | select(.name=="sleeper" and .state=="running")' >/dev/null \
  || fail "status does not show the service"
oc dpu service del --name "$N" --service sleeper
! kill -0 "$(jq -r .pid <<<"$sv")" 2>/dev/null || fail "service still running after del"

step "top shows both domains and stops by itself with --iterations"
top_out=$(oc dpu top --name "$N" --iterations 2 --interval 0.2)
grep -q "$N *soc" <<<"$top_out" || fail "top output: $top_out"
grep -q "$N *host" <<<"$top_out" || fail "top output: $top_out"

step "down removes everything, and is idempotent"
oc dpu down --name "$N"
assert_node_gone "$N"
oc dpu down --name "$N"
expect_fail "no node '$N'" oc dpu status --name "$N"
