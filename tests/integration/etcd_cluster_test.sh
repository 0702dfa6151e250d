#!/usr/bin/env bash
# The cluster state on a 3-member etcd cluster, on three fabric hosts:
#  1. one key per object in etcd; the agents of two nodes program from it;
#  2. one member killed: applies and programming go on;
#  3. two killed: `svc apply` fails with one line; the dataplane keeps
#     forwarding (a ClusterIP from a pod, the EIP from a fabric client);
#  4. the members back: the agents catch up without a restart;
#  5. node b, the EIP's owner, dies (kill -9 of its agent and watchdog, its
#     SoC cut from the fabric): within the lease TTL its pod leaves the
#     Service on node a, and the EIP moves to node a; a fabric client's
#     requests resume within 5 s.
export OC_CLUSTER_STORE=etcd
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
A=ta$ID B=tb$ID FC=tc$ID
EXPIRY_MS=2000
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
# Leases of 2 s keep the test quick; every offcore process reads this file.
svc_config "\"heartbeat_interval_ms\": 250, \"node_expiry_ms\": $EXPIRY_MS"
ms() { date +%s%3N; }
node_up "$A"
node_up "$B" --host-netns "th$ID"
cleanup "ip netns delete th$ID"
cleanup "\"$OFFCORE\" fabric host del $FC"
oc fabric host add "$FC" >/dev/null

step "1. the state lives in etcd, one key per object"
printf '%s\n' "apiVersion: offcore.io/v1" "kind: VPC" "metadata: {name: ve}" "---" \
  "apiVersion: offcore.io/v1" "kind: Subnet" "metadata: {name: se}" "spec: {vpc: ve, cidr: 10.65.0.0/24}" \
  > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml" >/dev/null
PA=qa-$ID PB=qb-$ID PC=qc-$ID
pod_add "$A" "$PA" se ve
pod_add "$B" "$PB" se ve
pod_add "$A" "$PC" se ve
serve "$PA" 8080
serve "$PB" 8080
svc_yaml() {  # svc_yaml NAME EIP|"" -> a Service over both pods
  local extra="" type=ClusterIP
  [ -n "$2" ] && { type=LoadBalancer; extra=", eip: $2"; }
  printf '%s\n' "apiVersion: offcore.io/v1" "kind: Service" "metadata: {name: $1}" \
    "spec: {type: $type, vpc: ve$extra, ports: [{port: 80, targetPort: 8080}], selector: {app: w}}"
}
{
  printf '%s\n' "apiVersion: offcore.io/v1" "kind: Backend" "metadata: {name: pa, labels: {app: w}}" \
    "spec: {kind: pod, vpc: ve, pod: $PA}" "---" \
    "apiVersion: offcore.io/v1" "kind: Backend" "metadata: {name: pb, labels: {app: w}}" \
    "spec: {kind: pod, vpc: ve, pod: $PB}" "---"
  svc_yaml web ""
} > "$SVC_T/svc.yaml"
oc svc apply -f "$SVC_T/svc.yaml" >/dev/null
wait_programmed web
keys=$(etcdctl_c get --prefix --keys-only /offcore/v1/ | grep -v '^$')
echo "$keys" | grep -qx "/offcore/v1/services/web" || fail "no key for Service web in etcd: $keys"
echo "$keys" | grep -qx "/offcore/v1/endpoints/$A/$PA/eth0" || fail "no key for $PA's endpoint in etcd"
echo "$keys" | grep -qx "/offcore/v1/live/$B" || fail "node $B holds no lease key"
[ ! -e "$SVC_T/cluster/state.json" ] || fail "the directory store was written too"
echo "$(echo "$keys" | wc -l) keys under /offcore/v1/"
VIP=$(oc svc get web --json | jq -r .clusterIP)
# Both backends answer a ClusterIP client within 40 requests.
both_answer() {
  local seen="" r
  for _ in $(seq 40); do
    r=$(get "$PC" "http://$1/") || continue
    seen+=" ${r%% *}"
    [[ $seen == *"$PA"* && $seen == *"$PB"* ]] && return 0
  done
  return 1
}
both_answer "$VIP" || fail "ClusterIP $VIP did not reach both pods"

# The EIP owner is a hash of the EIP over the live nodes: pick an EIP node b owns.
EIP=
for i in $(seq 20 60); do
  cand=10.77.203.$(( (ID + i) % 200 + 20 ))
  svc_yaml lb "$cand" > "$SVC_T/lb.yaml"
  oc svc apply -f "$SVC_T/lb.yaml" >/dev/null
  wait_programmed lb
  if [ "$(oc svc list --kind Service --json | jq -r '.[] | select(.name=="lb") | .eipOwner')" = "$B" ]; then
    EIP=$cand
    break
  fi
  oc svc delete Service lb >/dev/null
done
[ -n "$EIP" ] || fail "no EIP in the candidates is owned by $B"
eip_get() { oc fabric exec "$FC" -- curl -s --max-time "${1:-2}" "http://$EIP/"; }
for _ in $(seq 50); do eip_get 1 >/dev/null && break; sleep 0.1; done
eip_get >/dev/null || fail "fabric client -> EIP $EIP (owner $B)"
echo "EIP $EIP owned by $B"

step "2. one member down: applies and programming go on"
etcd_kill "${ETCD_HOSTS[2]}"
svc_yaml web2 "" > "$SVC_T/web2.yaml"
oc svc apply -f "$SVC_T/web2.yaml" >/dev/null || fail "svc apply with one member of three down"
wait_programmed web2
both_answer "$(oc svc get web2 --json | jq -r .clusterIP)" || fail "web2 does not answer with one member down"

step "3. two members down: writes fail with one line, the dataplane keeps forwarding"
etcd_kill "${ETCD_HOSTS[1]}"
svc_yaml web3 "" > "$SVC_T/web3.yaml"
t0=$(ms)
err=$(oc svc apply -f "$SVC_T/web3.yaml" 2>&1 >/dev/null) && fail "svc apply succeeded without a quorum"
echo "svc apply failed after $(( $(ms) - t0 )) ms: $err"
[ "$(echo "$err" | grep -c .)" -le 2 ] || fail "the error is more than one line (plus the summary): $err"
[[ $err == *etcd* ]] || fail "the error does not name etcd: $err"
both_answer "$VIP" || fail "ClusterIP $VIP stopped forwarding while etcd has no quorum"
eip_get >/dev/null || fail "the EIP stopped answering while etcd has no quorum"

step "4. the members come back: the agents catch up without a restart"
agent_a=$(status_field "$A" .agent.pid)
agent_b=$(status_field "$B" .agent.pid)
etcd_start "$SVC_T/etcd" "${ETCD_HOSTS[1]}" existing
etcd_start "$SVC_T/etcd" "${ETCD_HOSTS[2]}" existing
for _ in $(seq 100); do oc svc apply -f "$SVC_T/web3.yaml" >/dev/null 2>&1 && break; sleep 0.1; done
wait_programmed web3
both_answer "$(oc svc get web3 --json | jq -r .clusterIP)" || fail "web3 does not answer after the quorum came back"
[ "$(status_field "$A" .agent.pid)" = "$agent_a" ] && [ "$(status_field "$B" .agent.pid)" = "$agent_b" ] ||
  fail "an agent was restarted"

step "5. node $B dies: its pod leaves the Service and its EIP moves within the ${EXPIRY_MS} ms lease"
dog=$(status_field "$B" .watchdog.pid)
agent=$(status_field "$B" .agent.pid)
# Requests to the EIP from the fabric client, one every 100 ms, until it
# answers again after the kill.
kill -9 "$dog" "$agent"
ip -n oc-fabric link set "ocu-$B" down   # the SoC is gone from the fabric
t0=$(ms)
moved=
while (( $(ms) - t0 < 5000 )); do
  if r=$(eip_get 0.3) && [ -n "$r" ]; then moved=$(( $(ms) - t0 )); break; fi
  sleep 0.1
done
[ -n "$moved" ] || fail "no answer from $EIP within 5 s of $B dying"
echo "the EIP answered again after $moved ms: $r"
[[ $r == "$PA "* ]] || fail "the EIP answered from '$r', not $PA"
# Node a owns it (answers ARP for it) once b's lease is gone.
has_eip() { [[ $(ip -n "oc-$1-soc" -o addr show dev up0 2>/dev/null) == *" $EIP/32"* ]]; }
while ! has_eip "$A" && (( $(ms) - t0 < 5000 )); do sleep 0.05; done
took=$(( $(ms) - t0 ))
has_eip "$A" || fail "$A did not take $EIP within 5 s of $B dying"
echo "$A owns $EIP after $took ms"
(( took >= EXPIRY_MS - 500 )) || fail "$A took the EIP after $took ms, before $B's lease expired"
eip_get >/dev/null || fail "no answer from $EIP through its new owner $A"
# Within the lease (and one reconcile), a's ClusterIP sends nothing to b's pod.
t1=$(ms)
while (( $(ms) - t0 < EXPIRY_MS + 1500 )); do
  all_a=1
  for _ in $(seq 10); do
    r=$(get "$PC" "http://$VIP/") || { all_a=; break; }
    [[ $r == "$PA "* ]] || { all_a=; break; }
  done
  [ -n "$all_a" ] && break
done
[ -n "$all_a" ] || fail "$B's pod was still in Service web $(( $(ms) - t0 )) ms after $B died"
echo "Service web on $A: only $PA after $(( $(ms) - t0 )) ms"
oc svc list --kind Node
[ "$(oc svc list --kind Node --json | jq -r --arg n "$B" '.[] | select(.name==$n) | .live')" = false ] ||
  fail "svc list does not show $B down"
