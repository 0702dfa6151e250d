#!/usr/bin/env bash
# Pod networking and the Service load balancer end to end, on two software
# DPUs joined by the fabric (VXLAN between their SoCs):
#  - pods in one VPC reach each other on one node and across nodes;
#  - VPCs are isolated, even with overlapping CIDRs, ClusterIPs included;
#  - the four access scenarios: ClusterIP from a pod, ClusterIP of the
#    default VPC from the host domain, LoadBalancer EIP into one VPC (from a
#    fabric host), LoadBalancer EIP into several VPCs through the service
#    gateway (DNAT + SNAT to its own address);
#  - pod -> remote Service (client on node b, every backend on node a), TCP and UDP;
#  - a failing health probe takes its backend out within 2 s, and back in.
# OC_ROUTING=native (svc_scenarios_native_test.sh) runs the same scenarios
# with every VPC natively routed (no VXLAN): vpc2 then gets addresses of its
# own (a native VPC's may overlap no other's), and no packet may have gone
# through the tunnel.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
A=sa$ID
B=sb$ID
FC=sc$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
node_up "$B" --host-netns "sh$ID"
cleanup "\"$OFFCORE\" fabric host del $FC"
oc fabric host add "$FC"
EIP1=10.77.200.$(( ID % 200 + 20 ))
EIP2=10.77.201.$(( ID % 200 + 20 ))

ROUTING=${OC_ROUTING:-tunnel}
case $ROUTING in tunnel) S2_CIDR=10.61.1.0/24 ;; native) S2_CIDR=10.61.2.0/24 ;; *) fail "OC_ROUTING is tunnel or native" ;; esac
step "VPCs and subnets, $ROUTING routing (vpc1 and vpc2 overlap on purpose with the tunnel)"
cat > "$SVC_T/net.yaml" <<EOF
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vpc1}
spec: {routing: $ROUTING}
---
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vpc2}
spec: {routing: $ROUTING}
---
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: default}
spec: {routing: $ROUTING}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: s1}
spec: {vpc: vpc1, cidr: 10.61.1.0/24}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: s2}
spec: {vpc: vpc2, cidr: $S2_CIDR}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: sd}
spec: {vpc: default, cidr: 10.62.0.0/24}
EOF
oc svc apply -f "$SVC_T/net.yaml"

step "pods through the CNI plugin"
W1=w1-$ID W2=w2-$ID W3=w3-$ID C0=c0-$ID C1=c1-$ID V2=v2-$ID C2=c2-$ID D1=d1-$ID
pod_add "$A" "$W1" s1 vpc1; ip_w1=$POD_IP
pod_add "$A" "$W2" s1 vpc1; ip_w2=$POD_IP
pod_add "$A" "$V2" s2 vpc2; ip_v2=$POD_IP
pod_add "$A" "$D1" sd default; ip_d1=$POD_IP
pod_add "$A" "$C0" s1 vpc1; ip_c0=$POD_IP
pod_add "$B" "$W3" s1 vpc1; ip_w3=$POD_IP
pod_add "$B" "$C1" s1 vpc1; ip_c1=$POD_IP
pod_add "$B" "$C2" s2 vpc2; ip_c2=$POD_IP
echo "vpc1: w1=$ip_w1 w2=$ip_w2 c0=$ip_c0 (node a) w3=$ip_w3 c1=$ip_c1 (node b)"
echo "vpc2: v2=$ip_v2 (node a) c2=$ip_c2 (node b); default: d1=$ip_d1"
if [ "$ROUTING" = tunnel ]; then
  [ "$ip_v2" = "$ip_w1" ] || fail "expected vpc2's first pod to reuse vpc1's first address (overlap), got $ip_v2 vs $ip_w1"
fi
for p in "$W1" "$W2" "$W3" "$V2" "$D1"; do serve "$p" 8080; done

step "pod to pod in vpc1: same node and across nodes"
[ "$(get "$C0" "http://$ip_w1:8080/")" = "$W1 $ip_c0" ] || fail "c0 -> w1 on node a"
[ "$(get "$C1" "http://$ip_w1:8080/")" = "$W1 $ip_c1" ] || fail "c1 (node b) -> w1 (node a) over VXLAN"
[ "$(get "$C0" "http://$ip_w3:8080/")" = "$W3 $ip_c0" ] || fail "c0 (node a) -> w3 (node b)"
ip netns exec "$C1" ping -c 2 -W 1 "$ip_w2" >/dev/null || fail "ping c1 -> w2 across nodes"

step "a full-size packet crosses nodes whole ($ROUTING routing): no fragmentation, no black hole"
mtu=$(ip -n "$C1" -o link show eth0 | sed -n 's/.* mtu \([0-9]*\).*/\1/p')
# The largest ICMP echo the pod's MTU allows, Don't Fragment set: it must
# arrive (the tunnel's 50 bytes fit the fabric) and come back.
ip netns exec "$C1" ping -M do -s $(( mtu - 28 )) -c 2 -W 1 "$ip_w1" >/dev/null ||
  fail "a $mtu-byte DF packet from c1 (node b) to w1 (node a) was lost ($ROUTING routing)"
# One byte more is refused at the sender with an error (EMSGSIZE), not lost.
out=$(ip netns exec "$C1" ping -M do -s $(( mtu - 27 )) -c 1 -W 1 "$ip_w1" 2>&1) &&
  fail "a packet over the pod MTU ($mtu) went out with DF set"
grep -qiE "too long|mtu" <<<"$out" || fail "over-MTU ping did not fail with a size error: $out"
# A TCP transfer of full-size segments both ways: w1 sends back what it got.
ip netns exec "$W1" python3 -c '
import socket
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("0.0.0.0", 9090)); l.listen(1)
c, _ = l.accept(); d = b""
while len(d) < 300032:
    b = c.recv(65536)
    if not b: break
    d += b
c.sendall(d); c.close()' &
echo_pid=$!
cleanup "kill $echo_pid 2>/dev/null"
for _ in $(seq 100); do ip netns exec "$W1" ss -Hltn "sport = :9090" | grep -q . && break; sleep 0.05; done
got=$(ip netns exec "$C1" python3 -c "
import socket; s = socket.create_connection(('$ip_w1', 9090), timeout=5)
s.sendall(bytes(range(256)) * 1172); d = b''
while len(d) < 300032:
    c = s.recv(65536)
    if not c: break
    d += c
print('ok' if d == bytes(range(256)) * 1172 else 'got %d bytes, not what was sent' % len(d))" 2>&1)
[ "$got" = ok ] || fail "300 kB across nodes and back ($ROUTING routing): $got"

step "VPC isolation: the same address answers per VPC; nothing crosses"
[ "$(get "$C2" "http://$ip_v2:8080/")" = "$V2 $ip_c2" ] || fail "c2 (vpc2) must reach vpc2's $ip_v2, which is v2"
[ "$(get "$C1" "http://$ip_w1:8080/")" = "$W1 $ip_c1" ] || fail "c1 (vpc1) must reach vpc1's $ip_w1, which is w1"
! ip netns exec "$C2" ping -c 1 -W 1 "$ip_c0" >/dev/null 2>&1 || fail "vpc2 reached vpc1's c0 ($ip_c0)"
! get "$C2" "http://$ip_w3:8080/" >/dev/null || fail "vpc2 reached vpc1's w3 ($ip_w3)"

step "Services"
cat > "$SVC_T/svc.yaml" <<EOF
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: w1, labels: {app: web, tier: multi}}
spec: {kind: pod, vpc: vpc1, pod: $W1}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: w2, labels: {app: web}}
spec: {kind: pod, vpc: vpc1, pod: $W2}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: w3, labels: {app: far}}
spec: {kind: pod, vpc: vpc1, pod: $W3}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: v2, labels: {app: v2, tier: multi}}
spec: {kind: pod, vpc: vpc2, pod: $V2}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: d1, labels: {app: d}}
spec: {kind: pod, vpc: default, pod: $D1}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  type: ClusterIP
  vpc: vpc1
  clusterIP: 10.96.61.10
  ports: [{port: 80, targetPort: 8080, protocol: TCP}, {name: dns, port: 53, targetPort: 8080, protocol: UDP}]
  selector: {app: web}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: v2svc}
spec: {type: ClusterIP, vpc: vpc2, clusterIP: 10.96.61.20, ports: [{port: 80, targetPort: 8080}], selector: {app: v2}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: dsvc}
spec: {type: ClusterIP, vpc: default, clusterIP: 10.96.61.30, ports: [{port: 80, targetPort: 8080}], selector: {app: d}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: lb1}
spec: {type: LoadBalancer, vpc: vpc1, eip: $EIP1, ports: [{port: 80, targetPort: 8080}], selector: {app: far}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: lbx}
spec: {type: LoadBalancer, scope: cluster, vpc: vpc1, eip: $EIP2, ports: [{port: 80, targetPort: 8080}], selector: {tier: multi}}
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: w1-probe}
spec: {backend: w1, type: http, port: 8080, path: /, intervalMs: 250, timeoutMs: 200, failureThreshold: 2, successThreshold: 1}
EOF
oc svc apply -f "$SVC_T/svc.yaml"
wait_programmed web

step "1. ClusterIP from a pod in the same VPC (node a), TCP and UDP"
seen=""
for _ in $(seq 12); do seen+=$(get "$C0" http://10.96.61.10/ | cut -d' ' -f1)$'\n'; done
echo "$seen" | grep -q "^$W1$" && echo "$seen" | grep -q "^$W2$" || fail "web should spread over w1 and w2: $seen"
udp "$C0" 10.96.61.10 53 | grep -Eq "^($W1|$W2) $ip_c0$" || fail "UDP through the ClusterIP"

step "pod -> remote Service: client on node b, every backend on node a (TCP and UDP)"
r=$(get "$C1" http://10.96.61.10/)
[[ "$r" =~ ^($W1|$W2)\ $ip_c1$ ]] || fail "c1 -> web ClusterIP: '$r'"
udp "$C1" 10.96.61.10 53 | grep -Eq "^($W1|$W2) $ip_c1$" || fail "UDP c1 -> web ClusterIP across nodes"

step "a ClusterIP of another VPC is not reachable"
[ "$(get "$C2" http://10.96.61.20/)" = "$V2 $ip_c2" ] || fail "c2 -> its own VPC's v2svc"
! get "$C1" http://10.96.61.20/ >/dev/null || fail "vpc1 reached vpc2's ClusterIP"
! get "$C2" http://10.96.61.10/ >/dev/null || fail "vpc2 reached vpc1's ClusterIP"

step "2. ClusterIP of the default VPC from the host domain of node a"
r=$(oc dpu exec --name "$A" --domain host -- curl -s --max-time 2 http://10.96.61.30/)
[[ "$r" == "$D1 "* ]] || fail "host -> dsvc: '$r'"
echo "host domain reached $r"

step "3. LoadBalancer EIP into one VPC, from a fabric host (backend on the other node)"
fc_ip=$(oc fabric host list --json | jq -r --arg h "$FC" '.[] | select(.name==$h) | .ip'); fc_ip=${fc_ip%/*}
r=$(oc fabric exec "$FC" -- curl -s --max-time 2 "http://$EIP1/")
[ "$r" = "$W3 $fc_ip" ] || fail "EIP $EIP1 -> w3 with the client's own address: '$r'"

step "4. LoadBalancer EIP into several VPCs through the service gateway (DNAT + SNAT), the gateway on either node"
# The gateway is the EIP's owner: one live node, by hash of the EIP. Both
# placements are checked: on node a beside the backends, and on node b (the
# backends' replies cross the fabric to the gateway's own address).
check_gateway() {
  local gw_ip seen="" r
  gw_node=$(oc svc list --kind Service --json | jq -r '.[] | select(.name=="lbx") | .eipOwner')
  gw_ip=$(status_field "$gw_node" .network.uplink.ip); gw_ip=${gw_ip%/*}
  for i in $(seq 16); do
    r=$(oc fabric exec "$FC" -- curl -s --max-time 2 "http://$EIP2/") ||
      fail "request $i to lbx ($EIP2, gateway on $gw_node) got no answer in 2 s (curl exit $?; got so far: $seen)"
    seen+=$r$'\n'
  done
  echo "$seen" | grep -q "^$W1 $gw_ip$" || fail "lbx never reached w1 (vpc1) from the gateway address $gw_ip ($gw_node): $seen"
  echo "$seen" | grep -q "^$V2 $gw_ip$" || fail "lbx never reached v2 (vpc2) from the gateway address $gw_ip ($gw_node): $seen"
  echo "gateway on $gw_node: both VPCs answered"
}
check_gateway
first_gw=$gw_node
for x in $(seq 20 60); do
  EIP2=10.77.202.$x
  sed -i "s/eip: 10\.77\.20[12]\.[0-9]*,/eip: $EIP2,/" "$SVC_T/svc.yaml"
  oc svc apply -f "$SVC_T/svc.yaml" >/dev/null
  [ "$(oc svc list --kind Service --json | jq -r '.[] | select(.name=="lbx") | .eipOwner')" != "$first_gw" ] && break
done
wait_programmed lbx
check_gateway
[ "$gw_node" != "$first_gw" ] || fail "no EIP in 10.77.202.20-60 is owned by the other node"

if [ "${OC_CLUSTER_STORE:-dir}" = etcd ]; then
  step "the state is in etcd, one key per object, and nowhere else"
  n=$(etcdctl_c get --prefix --keys-only /offcore/v1/services/ | grep -c .)
  [ "$n" = "$(oc svc list --kind Service --json | jq length)" ] || fail "etcd holds $n Service keys"
  [ ! -e "$SVC_T/cluster/state.json" ] || fail "the directory store was written too"
fi

step "svc get shows endpoints and health"
oc svc get web --json | jq -e '.endpoints | length == 2' >/dev/null || fail "web endpoints: $(oc svc get web --json)"

step "health probe: w1's server dies -> out of the table within 2 s -> back when it returns"
kill "${SERVER_PID[$W1]}"
t0=$(date +%s.%N)
ok_since=""
for _ in $(seq 60); do
  r=$(get "$C0" http://10.96.61.10/ | cut -d' ' -f1) || r=""
  now=$(date +%s.%N)
  if [ "$r" = "$W2" ]; then
    ok_since=${ok_since:-$now}
    # 8 answers in a row from w2 means w1 is out of the table.
    n_ok=$(( ${n_ok:-0} + 1 ))
    [ "$n_ok" -ge 8 ] && break
  else
    ok_since=""; n_ok=0
  fi
done
[ -n "$ok_since" ] || fail "requests never settled on w2"
removal=$(awk -v a="$t0" -v b="$ok_since" 'BEGIN{printf "%.2f", b-a}')
echo "w1 out of rotation after ${removal}s"
assert_cmp "$removal" "<=" 2.0 "seconds until new requests avoid the dead backend"
oc svc get web --json | jq -e '.endpoints[] | select(.backend=="w1" or .name=="w1") | .health == "unhealthy"' >/dev/null ||
  fail "svc get does not show w1 unhealthy: $(oc svc get web --json)"
serve "$W1" 8080
back=""
for _ in $(seq 40); do
  r=$(get "$C0" http://10.96.61.10/ | cut -d' ' -f1) || true
  if [ "$r" = "$W1" ]; then back=1; break; fi
  sleep 0.1
done
[ -n "$back" ] || fail "w1 did not come back after its server returned"

step "dataplane counters"
curl -s --unix-socket "/run/offcore/$A/api.sock" http://offcore/v1/net/status | jq -c .dataplane
for n in "$A" "$B"; do
  counters=$(oc net status --node "$n" --json | jq -c .dataplane)
  tunnel=$(jq .tunnel <<<"$counters") native=$(jq .native <<<"$counters")
  if [ "$ROUTING" = native ]; then
    [ "$tunnel" = 0 ] && [ "$native" -gt 0 ] || fail "node $n: $tunnel packets tunnelled, $native routed natively (native routing: all natively)"
  else
    [ "$native" = 0 ] && [ "$tunnel" -gt 0 ] || fail "node $n: $tunnel packets tunnelled, $native routed natively (tunnel routing)"
  fi
done
