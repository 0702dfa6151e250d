#!/usr/bin/env bash
# Nodes that leave the cluster, and a fabric range that never leaves the
# machine:
#  1. fabric addresses are handed out round-robin: host add/del/add gets a
#     new address; while the fabric exists the root namespace has an
#     unreachable route for it (fails at once, never the default route);
#  2. `dpu down` of the EIP owner: the other live node owns the EIP and a
#     fabric client reaches it within 5 s; the node left the cluster state;
#  3. the node comes back with a fabric address no record holds; an agent
#     restart does not look like a departure;
#  4. a node that vanishes without `dpu down` (agent SIGSTOPped) loses its
#     EIP within the heartbeat expiry, and `svc list --kind Node` says so;
#  5. the unreachable route goes with the fabric.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
A=la$ID B=lb$ID FC=lc$ID H1=ld$ID H2=le$ID
EIP=10.77.202.$(( ID % 200 + 20 ))
EXPIRY_MS=2000
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
# A short expiry keeps the test quick; every offcore process reads this file.
printf '{"cluster_dir": "%s/cluster", "heartbeat_interval_ms": 250, "node_expiry_ms": %d}\n' \
  "$SVC_T" "$EXPIRY_MS" > "$SVC_T/config.json"
host_ip() { oc fabric host list --json | jq -r --arg h "$1" '.[] | select(.name==$h) | .ip | sub("/.*"; "")'; }
node_json() { oc svc list --kind Node --json | jq -c --arg n "$1" '.[] | select(.name==$n)'; }
eip_owner() { oc svc list --kind Service --json | jq -r '.[] | select(.name=="lb") | .eipOwner'; }
has_eip() {
  local out
  out=$(ip -n "oc-$1-soc" -o addr show dev up0 2>/dev/null) || return 1
  [[ $out == *" $EIP/32"* ]]
}
ms() { date +%s%3N; }

step "1. fabric addresses are not reused; the fabric range is unreachable from the root namespace"
cleanup "\"$OFFCORE\" fabric host del $H1"
cleanup "\"$OFFCORE\" fabric host del $H2"
oc fabric host add "$H1" >/dev/null
ip1=$(host_ip "$H1")
oc fabric host del "$H1"
oc fabric host add "$H2" >/dev/null
ip2=$(host_ip "$H2")
echo "first host $ip1, next host $ip2"
[ -n "$ip1" ] && [ "$ip1" != "$ip2" ] || fail "a fabric host got the address of one just removed ($ip2)"
out=$(ip route get "$ip2" 2>&1) && fail "the root namespace routes $ip2 somewhere: $out"
[[ $out == *nreachable* || $out == *"No route"* ]] || fail "ip route get $ip2: '$out'"
routes=$(ip route show 10.77.0.0/16)
[[ $routes == *"unreachable 10.77.0.0/16"*"metric 4242"* ]] || fail "no unreachable route: '$routes'"
t0=$(ms)
! out=$(curl -s --max-time 5 "http://$ip2:9/" 2>&1) || fail "curl reached $ip2 from the root namespace"
(( $(ms) - t0 < 1000 )) || fail "curl to a fabric address waited $(( $(ms) - t0 )) ms instead of failing at once"
out=$(oc image convert --to registry --plain-http --catalog "$SVC_T/catalog" --work-dir "$SVC_T/work" \
  "$ip2:5000/none:1" 2>&1) && fail "image convert from an unroutable fabric registry succeeded"
[[ $out == *"no route to fabric address $ip2:5000: start a node"* ]] || fail "image convert said: $out"

step "nodes: $A (root namespace) and $B"
node_up "$A"
node_up "$B" --host-netns "lh$ID"
cleanup "ip netns delete lh$ID"
r=$(ip route get "$ip2")
[[ $r == *"dev och-$A"* ]] || fail "with $A up, the root namespace must reach the fabric through it: $r"
ping -c 1 -W 2 "$ip2" >/dev/null || fail "root namespace -> fabric host $ip2 through $A's SoC"
cleanup "\"$OFFCORE\" fabric host del $FC"
oc fabric host add "$FC" >/dev/null

printf '%s\n' "apiVersion: offcore.io/v1" "kind: VPC" "metadata: {name: vl}" "---" \
  "apiVersion: offcore.io/v1" "kind: Subnet" "metadata: {name: sl}" "spec: {vpc: vl, cidr: 10.64.0.0/24}" \
  > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml" >/dev/null
PA=pa-$ID PB=pb-$ID
pod_add "$A" "$PA" sl vl
pod_add "$B" "$PB" sl vl
serve "$PA" 8080
serve "$PB" 8080
printf '%s\n' \
  "apiVersion: offcore.io/v1" "kind: Backend" "metadata: {name: pa, labels: {app: lb}}" \
  "spec: {kind: pod, vpc: vl, pod: $PA}" "---" \
  "apiVersion: offcore.io/v1" "kind: Backend" "metadata: {name: pb, labels: {app: lb}}" \
  "spec: {kind: pod, vpc: vl, pod: $PB}" "---" \
  "apiVersion: offcore.io/v1" "kind: Service" "metadata: {name: lb}" \
  "spec: {type: LoadBalancer, vpc: vl, eip: $EIP, ports: [{port: 80, targetPort: 8080}], selector: {app: lb}}" \
  > "$SVC_T/svc.yaml"
oc svc apply -f "$SVC_T/svc.yaml" >/dev/null
wait_programmed lb
O=$(eip_owner)
case $O in "$A") X=$B ;; "$B") X=$A ;; *) fail "EIP $EIP has no owner: '$O'" ;; esac
for _ in $(seq 50); do has_eip "$O" && break; sleep 0.1; done
has_eip "$O" || fail "the owner $O does not answer for $EIP"
! has_eip "$X" || fail "$X answers for $EIP too"
r=$(oc fabric exec "$FC" -- curl -s --max-time 2 "http://$EIP/") || fail "fabric client -> EIP $EIP (owner $O)"
echo "EIP $EIP owned by $O; answered: $r"
[ "$(node_json "$A" | jq -r .live)" = true ] && [ "$(node_json "$B" | jq -r .live)" = true ] ||
  fail "both nodes must be live: $(oc svc list --kind Node)"

# Polls the EIP from the fabric client until the ms deadline $1 (curl
# timeout $2 s); the answer is left in $r.
eip_answers_by() {
  while (( $(ms) < $1 )); do
    if r=$(oc fabric exec "$FC" -- curl -s --max-time "$2" "http://$EIP/") && [ -n "$r" ]; then return 0; fi
    sleep 0.1
  done
  return 1
}

step "2. dpu down of the EIP owner ($O): $X takes the EIP within 5 s"
old_fabric_ip=$(node_json "$O" | jq -r .fabricIp)
t0=$(ms)
oc dpu down --name "$O" >/dev/null
eip_answers_by $((t0 + 5000)) 1 || fail "no answer from $EIP within 5 s of \`dpu down $O\`"
echo "answered after $(( $(ms) - t0 )) ms (dpu down included): $r"
[ "${r%% *}" = "$PB" ] || [ "${r%% *}" = "$PA" ] || fail "unexpected answer '$r'"
has_eip "$X" || fail "$X does not answer for $EIP"
[ "$(eip_owner)" = "$X" ] || fail "svc list says the EIP owner is '$(eip_owner)', not $X"
[ -z "$(node_json "$O")" ] || fail "$O is still in the cluster state: $(node_json "$O")"
[ "$(oc svc list --kind Endpoint --json | jq --arg n "$O" '[.[] | select(.node==$n)] | length')" = 0 ] ||
  fail "endpoints of $O outlived it"
[ ! -e "$SVC_T/cluster/heartbeat/$O" ] && [ ! -e "$SVC_T/cluster/health/$O.json" ] ||
  fail "$O's heartbeat or health file is left"

step "3. $O comes back with an address no record holds; an agent restart is no departure"
if [ "$O" = "$A" ]; then node_up "$O"; else node_up "$O" --host-netns "lh$ID"; fi
for _ in $(seq 50); do [ -n "$(node_json "$O")" ] && break; sleep 0.1; done
new_fabric_ip=$(node_json "$O" | jq -r .fabricIp)
echo "$O: fabric address $old_fabric_ip before, $new_fabric_ip now"
[ "$new_fabric_ip" != "$old_fabric_ip" ] || fail "$O got its old fabric address back"
[ "$(oc svc list --kind Node --json | jq '[.[].fabricIp] | unique | length')" = 2 ] ||
  fail "two records hold one fabric address"
for _ in $(seq 50); do
  if [ "$(eip_owner)" = "$O" ] && has_eip "$O" && ! has_eip "$X"; then break; fi
  sleep 0.1
done
[ "$(eip_owner)" = "$O" ] && has_eip "$O" && ! has_eip "$X" || fail "the EIP did not go back to $O (its hash owner)"
oc dpu agent restart --name "$O" >/dev/null
[ "$(node_json "$O" | jq -r .live)" = true ] || fail "an agent restart made $O look gone"
[ "$(eip_owner)" = "$O" ] && has_eip "$O" || fail "an agent restart moved the EIP off $O"
oc fabric exec "$FC" -- curl -s --max-time 2 "http://$EIP/" >/dev/null || fail "EIP after the agent restart"

step "4. $O vanishes without dpu down (agent SIGSTOP): $X owns the EIP within the ${EXPIRY_MS} ms expiry"
pid=$(oc dpu status --name "$O" --json | jq -r .agent.pid)
alive "$pid" || fail "no agent pid for $O"
cleanup "kill -CONT $pid"
kill -STOP "$pid"
t0=$(ms)
while (( $(ms) - t0 < EXPIRY_MS + 1500 )); do
  if has_eip "$X"; then break; fi
  sleep 0.1
done
took=$(( $(ms) - t0 ))
has_eip "$X" || fail "$X did not take $EIP within $took ms of $O vanishing"
echo "$X took $EIP after $took ms"
(( took >= EXPIRY_MS - 500 )) || fail "$X took the EIP after $took ms, before $O expired"
[ "$(node_json "$O" | jq -r .live)" = false ] || fail "svc list still shows $O live: $(node_json "$O")"
nodes=$(oc svc list --kind Node)
echo "$nodes"
[[ $nodes == *"expired (last beat"* ]] || fail "svc list --kind Node does not show $O expired"
[ "$(eip_owner)" = "$X" ] || fail "svc list says the owner is '$(eip_owner)'"
ok=
for _ in $(seq 20); do
  if r=$(oc fabric exec "$FC" -- curl -s --max-time 1 "http://$EIP/") && [ -n "$r" ]; then ok=1; break; fi
  sleep 0.1
done
[ -n "$ok" ] || fail "no answer from $EIP through $X"
kill -CONT "$pid"
for _ in $(seq 50); do [ "$(node_json "$O" | jq -r .live)" = true ] && break; sleep 0.1; done
[ "$(node_json "$O" | jq -r .live)" = true ] || fail "$O did not come back live after SIGCONT"
# It owns the EIP again (its hash); clients must follow it there, not keep X's MAC.
for _ in $(seq 50); do
  if [ "$(eip_owner)" = "$O" ] && ! has_eip "$X"; then break; fi
  sleep 0.1
done
! has_eip "$X" || fail "$X kept $EIP after $O came back"
eip_answers_by $(($(ms) + 2000)) 0.5 || fail "no answer from $EIP within 2 s of $O taking it back"

step "5. the unreachable route goes with the fabric"
oc dpu down --name "$A" >/dev/null
oc dpu down --name "$B" >/dev/null
oc fabric host del "$FC"
oc fabric host del "$H2"
if [ -z "$(oc dpu list 2>/dev/null | tail -n +2)" ] && [ "$(oc fabric host list --json | jq length)" = 0 ]; then
  [ -z "$(ip route show 10.77.0.0/16)" ] || fail "the fabric is gone but its route is not: $(ip route show 10.77.0.0/16)"
else
  echo "someone else uses the fabric; not checking that its route is gone"
fi
