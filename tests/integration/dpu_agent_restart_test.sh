#!/usr/bin/env bash
# The node's agent can be replaced (crashed, hung or upgraded) without
# disturbing the node it runs:
#  - while no agent runs, the BPF dataplane keeps forwarding pod and Service
#    traffic (programs and pinned maps are not the agent's);
#  - `dpu agent restart` adopts the supervised services (same pids) and
#    supervises them afterwards: one that dies later is restarted;
#  - IPAM survives: a pod added after the restart gets a fresh address, and
#    CHECK and DEL work for pods added before it;
#  - a backend the probes found dead stays out of the Maglev table across
#    the restart instead of coming back for a few probe intervals;
#  - a hung agent (SIGSTOP) is killed and replaced.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
N=ar$ID
node_up "$N" --host-netns "h$N"
svc_pid() { oc dpu service list --name "$N" --json | jq -r --arg s "$1" '.[] | select(.name==$s) | .pid'; }
svc_field() { oc dpu service list --name "$N" --json | jq -r --arg s "$1" ".[] | select(.name==\$s) | $2"; }

oc dpu service add --name "$N" --service keeper -- sleep 3600
keeper=$(svc_pid keeper)
alive "$keeper" || fail "keeper did not start"

cat > "$SVC_T/net.yaml" <<EOF
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: v1}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: s1}
spec: {vpc: v1, cidr: 10.64.1.0/24}
EOF
oc svc apply -f "$SVC_T/net.yaml"
W1=rw1-$ID W2=rw2-$ID DD=rdd-$ID C=rc-$ID
pod_add "$N" "$W1" s1 v1; ip_w1=$POD_IP
pod_add "$N" "$W2" s1 v1; ip_w2=$POD_IP; result_w2=$POD_RESULT
pod_add "$N" "$DD" s1 v1; ip_dd=$POD_IP
pod_add "$N" "$C" s1 v1; ip_c=$POD_IP
serve "$W1" 8080
serve "$W2" 8080
# DD serves nothing: its probe fails and keeps it out of the table.
for b in "w1 $W1" "w2 $W2" "dd $DD"; do
  set -- $b
  printf -- '---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: %s, labels: {app: web}}\nspec: {kind: pod, vpc: v1, pod: %s}\n' "$1" "$2"
done > "$SVC_T/svc.yaml"
cat >> "$SVC_T/svc.yaml" <<EOF
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: dd-probe}
spec: {backend: dd, type: tcp, port: 8080, intervalMs: 300, timeoutMs: 200, failureThreshold: 2, successThreshold: 1}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec: {type: ClusterIP, vpc: v1, clusterIP: 10.96.64.10, ports: [{port: 80, targetPort: 8080}], selector: {app: web}}
EOF
oc svc apply -f "$SVC_T/svc.yaml"
wait_programmed web
dd_health() { oc svc get web --json | jq -r '.endpoints[] | select(.backend=="dd") | .health'; }
for _ in $(seq 50); do [ "$(dd_health)" = unhealthy ] && break; sleep 0.1; done
[ "$(dd_health)" = unhealthy ] || fail "dd should be unhealthy: $(oc svc get web --json)"
dd_since() { oc svc get web --json | jq -r '.endpoints[] | select(.backend=="dd") | .sinceMs'; }

answered() { local r; r=$(get "$C" http://10.96.64.10/ | cut -d' ' -f1) || r=""; [ "$r" = "$W1" ] || [ "$r" = "$W2" ]; }
# every_request_answers N: N new connections through the ClusterIP, all answered by w1 or w2.
every_request_answers() {
  for _ in $(seq "$1"); do answered || fail "a request through the ClusterIP went unanswered (dd back in the table?)"; done
}
# The reconcile that drops dd follows its health report: wait for 6 answers in a row.
ok=0
for _ in $(seq 60); do
  if answered; then ok=$((ok + 1)); else ok=0; fi
  [ "$ok" -ge 6 ] && break
done
[ "$ok" -ge 6 ] || fail "dd never left the table"
every_request_answers 6
since_before=$(dd_since)

step "kill -9 of the agent (its watchdog stopped too): the dataplane keeps forwarding"
# The watchdog would bring the agent back within a second
# (dpu_watchdog_test); stopped, it shows what runs without any agent.
dog=$(status_field "$N" .watchdog.pid)
kill -STOP "$dog"
cleanup "kill -CONT $dog 2>/dev/null"
agent=$(status_field "$N" .agent.pid)
kill -9 "$agent"
for _ in $(seq 50); do alive "$agent" || break; sleep 0.05; done
[ "$(status_field "$N" .agent.state)" = unreachable ] || fail "the agent should be unreachable"
oc dpu status --name "$N" | grep -q "dpu agent restart" || fail "status should say how to restart the agent"
every_request_answers 6
[ "$(get "$C" "http://$ip_w1:8080/")" = "$W1 $ip_c" ] || fail "pod to pod without an agent"
alive "$keeper" || fail "the service died with the agent"
netns_add "rx-$ID"
err=$(cni ADD "$N" "rx-$ID" s1 v1 2>/dev/null) && fail "CNI ADD without an agent succeeded: $err"
echo "$err" | jq -e '.code and (.msg | length > 0)' >/dev/null || fail "CNI ADD without an agent: no error JSON: $err"
echo "CNI ADD without an agent: $(echo "$err" | jq -r .msg)"

step "dpu agent restart adopts the services; the dead backend stays out"
oc dpu agent restart --name "$N"
every_request_answers 12
agent2=$(status_field "$N" .agent.pid)
[ "$agent2" != "$agent" ] && alive "$agent2" || fail "no new agent"
[ "$(status_field "$N" .agent.state)" = running ] || fail "the new agent does not answer"
dog2=$(status_field "$N" .watchdog.pid)
[ "$dog2" != "$dog" ] && alive "$dog2" || fail "the restart did not replace the stopped watchdog"
! alive "$dog" || fail "the stopped watchdog $dog survived the restart"
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper should be adopted with pid $keeper, got $(svc_pid keeper)"
[ "$(svc_field keeper .state)" = running ] || fail "keeper state: $(svc_field keeper .state)"
[ "$(dd_health)" = unhealthy ] || fail "dd came back healthy after the restart"
# Deterministic: a new agent that forgot dd's health would report a fresh
# transition (a new sinceMs) once its probe failed again.
sleep 1  # > failureThreshold x interval: the new agent's probe has run
[ "$(dd_since)" = "$since_before" ] || fail "dd's health was re-learned, not carried over ($since_before -> $(dd_since))"

step "IPAM survived: a new pod gets a fresh address; CHECK and DEL of older pods"
P4=rp4-$ID
pod_add "$N" "$P4" s1 v1; ip_p4=$POD_IP
for ip in "$ip_w1" "$ip_w2" "$ip_dd" "$ip_c"; do [ "$ip_p4" != "$ip" ] || fail "new pod reused $ip"; done
r=$(get "$P4" http://10.96.64.10/ | cut -d' ' -f1)
[ "$r" = "$W1" ] || [ "$r" = "$W2" ] || fail "the new pod through the ClusterIP: '$r'"
out=$(cni CHECK "$N" "$W2" s1 v1 ",\"prevResult\":$result_w2") || fail "CHECK of a pod from before the restart: $out"
cni DEL "$N" "$C" s1 v1 || fail "DEL of a pod from before the restart"
! ip netns exec "$C" ip link show eth0 >/dev/null 2>&1 || fail "DEL left the VF in $C"
[ "$(get "$P4" "http://$ip_w1:8080/")" = "$W1 $ip_p4" ] || fail "pod to pod after the restart"

step "a graceful restart (agent alive) keeps the services too"
out=$(oc dpu agent restart --name "$N" 2>&1)
echo "$out"
[[ "$out" != *"did not exit when asked"* ]] || fail "a live agent should exit when asked, not be killed"
grep -q "released" "/run/offcore/$N/agent.log" || fail "the agent log does not show services released"
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper lost on a graceful restart"

step "a hung agent is killed and replaced"
agent3=$(status_field "$N" .agent.pid)
kill -STOP "$agent3"
cleanup "kill -CONT $agent3 2>/dev/null"
oc dpu agent restart --name "$N"
! alive "$agent3" || fail "the hung agent $agent3 survived"
[ "$(svc_pid keeper)" = "$keeper" ] || fail "keeper lost when replacing a hung agent"

step "the new agent supervises what it adopted"
kill "$keeper"
for _ in $(seq 100); do
  p=$(svc_pid keeper)
  [ -n "$p" ] && [ "$p" != 0 ] && [ "$p" != "$keeper" ] && [ "$(svc_field keeper .state)" = running ] && break
  sleep 0.05
done
keeper2=$(svc_pid keeper)
[ "$keeper2" != "$keeper" ] && alive "$keeper2" || fail "adopted keeper was not restarted after it died"
[ "$(svc_field keeper .restarts)" -ge 1 ] || fail "restarts should count the adopted service's death"
echo "keeper $keeper died; restarted as $keeper2"

step "down still removes everything"
oc dpu down --name "$N"
assert_node_gone "$N"
! alive "$keeper2" || fail "keeper survived down"
