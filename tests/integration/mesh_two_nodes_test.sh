#!/usr/bin/env bash
# The service mesh's node proxies on two software DPUs, with real clients
# (curl, a raw TCP client) in pod namespaces the CNI plugin wired:
#  - a mesh pod's connections (to a pod, to a Service) go through its node's
#    proxy in the SoC, which connects from the client's own address: the
#    server sees the real source IP;
#  - a plain pod's connection to a mesh pod is captured on the inbound side,
#    from the same node and from another node (over VXLAN), where STRICT
#    refuses it and PERMISSIVE proxies it with the plain pod's address;
#  - a mesh pod's own connection to a plain pod elsewhere stays direct, and
#    a Service endpoint that is a plain pod elsewhere is reached (L4, L7);
#  - nothing is installed in any pod's namespace;
#  - a pod asking for the mesh on a node without it is refused.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
A=ma$ID
B=mb$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
node_up "$B" --host-netns "mh$ID"

cat > "$SVC_T/net.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: sm}
spec: {vpc: default, cidr: 10.64.0.0/24}
EOF2
oc svc apply -f "$SVC_T/net.yaml"

step "a mesh pod on a node without the mesh is refused, saying what to do"
netns_add "x$ID"
out=$(printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","node":"%s","subnet":"sm","mesh":true}' "$A" |
  CNI_COMMAND=ADD CNI_CONTAINERID=x$ID CNI_NETNS=/var/run/netns/x$ID CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin "$CNI") &&
  fail "CNI ADD of a mesh pod succeeded on a node without the mesh: $out"
echo "$out" | grep -q "offcore mesh up --node $A" || fail "the refusal does not say what to do: $out"

step "node proxies up"
mesh_up "$A"
mesh_up "$B"
oc dpu status --name "$A" --json | jq -e '.services[] | select(.name == "mesh") | .state == "running"' >/dev/null ||
  fail "the mesh proxy is not a running agent service of $A"

step "pods: client and server in the mesh on node a, a plain pod beside them, a server on node b"
C=mc$ID S1=ms1$ID P=mp$ID S2=ms2$ID
mesh_pod_add "$A" "$C" sm frontend; ip_c=$POD_IP
mesh_pod_add "$A" "$S1" sm web; ip_s1=$POD_IP
pod_add "$A" "$P" sm default; ip_p=$POD_IP
mesh_pod_add "$B" "$S2" sm web; ip_s2=$POD_IP
serve "$S1" 8080
echo_serve "$S1" 9000
serve "$S2" 8080
echo_serve "$S2" 9000
echo "client $ip_c, server $ip_s1, plain $ip_p (node a); server $ip_s2 (node b)"

step "mesh pod -> mesh pod: through the proxy, with the client's own address"
out0=$(mesh_counter "$A" mesh_out)
[ "$(get "$C" "http://$ip_s1:8080/")" = "$S1 $ip_c" ] || fail "c -> s1 through the mesh: $(get "$C" "http://$ip_s1:8080/")"
[ "$(mesh_counter "$A" mesh_out)" -gt "$out0" ] || fail "the dataplane handed nothing to the proxy (mesh_out)"
oc mesh status --node "$A" --json | jq -e '[.listeners[].name] | sort == ["hbone", "inbound", "outbound"]' >/dev/null ||
  fail "mesh status does not list the outbound, inbound and HBONE listeners: $(oc mesh status --node "$A" --json | jq -c .listeners)"

step "a raw TCP protocol (not HTTP), L4 passthrough"
got=$(echo_get "$C" "$ip_s1" 9000 "hello-mesh")
[ "$got" = "$ip_c hello-mesh" ] || fail "raw TCP through the mesh: '$got'"

step "across nodes: HBONE (HTTP/2 CONNECT over mTLS) between the proxies, source address kept"
[ "$(get "$C" "http://$ip_s2:8080/")" = "$S2 $ip_c" ] || fail "c (node a) -> s2 (node b): $(get "$C" "http://$ip_s2:8080/")"
got=$(echo_get "$C" "$ip_s2" 9000 "over-hbone")
[ "$got" = "$ip_c over-hbone" ] || fail "raw TCP across nodes: '$got'"
oc mesh status --node "$B" --json | jq -e '.certificates[] | select(.identity == "spiffe://cluster.local/ns/default/sa/web")' >/dev/null ||
  fail "node b holds no certificate for its pod's identity: $(oc mesh status --node "$B" --json | jq -c .certificates)"
oc mesh status --node "$A" --json | jq -e '[.certificates[].identity] | index("spiffe://cluster.local/ns/default/sa/frontend")' >/dev/null ||
  fail "node a holds no certificate for the client's identity"

step "a Service: ClusterIP from a mesh pod goes through the proxy's load balancer"
cat > "$SVC_T/svc.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web1-$ID, labels: {app: web}}
spec: {kind: pod, pod: $S1}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: web2-$ID, labels: {app: web}}
spec: {kind: pod, pod: $S2}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  clusterIP: 10.96.64.10
  ports: [{port: 80, targetPort: 8080}]
EOF2
oc svc apply -f "$SVC_T/svc.yaml"
vip=10.96.64.10
for _ in $(seq 50); do
  oc mesh status --node "$A" --json | jq -e '.services[] | select(.name == "web") | .endpoints | length == 2' >/dev/null && break
  sleep 0.1
done
seen=""
for _ in $(seq 8); do
  r=$(get "$C" "http://$vip/")
  case "$r" in
    "$S1 $ip_c"|"$S2 $ip_c") seen="$seen ${r%% *}" ;;
    *) fail "c -> Service web ($vip): '$r'" ;;
  esac
done
echo "$seen" | grep -q "$S1" && echo "$seen" | grep -q "$S2" || fail "the Service's two endpoints did not both answer: $seen"
# No appProtocol on the port: the proxy sniffed HTTP and served it at L7.
metrics() { curl -s --max-time 2 --unix-socket "/run/offcore/$A/mesh.sock" http://x/metrics; }
want='offcore_mesh_requests_total\{[^}]*cluster="web:80"[^}]*response_code="200"'
for _ in $(seq 20); do
  m=$(metrics)
  grep -Eq "$want" <<<"$m" && break
  sleep 0.1
done
grep -Eq "$want" <<<"$m" || fail "the proxy's metrics have no HTTP request to web: $(grep requests_total <<<"$m")"

step "plain pod -> mesh pod: the inbound side, still the real source address"
in0=$(mesh_counter "$A" mesh_in)
[ "$(get "$P" "http://$ip_s1:8080/")" = "$S1 $ip_p" ] || fail "p -> s1 (inbound capture): $(get "$P" "http://$ip_s1:8080/")"
[ "$(mesh_counter "$A" mesh_in)" -gt "$in0" ] || fail "the dataplane captured nothing inbound (mesh_in)"

step "a plain pod on node b -> a mesh pod on node a: captured over VXLAN, STRICT refuses, PERMISSIVE proxies"
Q=mq$ID
pod_add "$B" "$Q" sm default; ip_q=$POD_IP
echo_serve "$Q" 9000
# A server in s1 that logs every connection it accepts (peer address).
accepts=$SVC_T/s1-accepts.log
: > "$accepts"
ip netns exec "$S1" python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 9100)); s.listen(16)
while True:
    c, peer = s.accept()
    with open(sys.argv[1], "a") as f: f.write(peer[0] + "\n")
    c.recv(100); c.sendall(("seen " + peer[0]).encode()); c.close()' "$accepts" >/dev/null 2>&1 &
cleanup "kill $!"
for _ in $(seq 100); do
  ip netns exec "$S1" ss -Hltn "sport = :9100" | grep -q . && break
  sleep 0.05
done
# attempt POD IP PORT: one connection; prints what came back, or "closed"
# (reset, or EOF without data) or "failed: why" (no connection at all). A
# reset can beat connect()'s return (the proxy resets as it accepts).
attempt() {
  ip netns exec "$1" python3 -c '
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
except ConnectionResetError:
    print("closed"); sys.exit()
except OSError as e:
    print("failed:", e); sys.exit()
try:
    c.sendall(b"x"); d = c.recv(100)
except OSError:
    d = b""
print(d.decode() if d else "closed")' "$2" "$3"
}
refused_strict() {
  metrics | awk '/^offcore_mesh_tcp_connections_refused_total\{/ && /listener="inbound"/ &&
    /reason="plaintext_strict"/ {n += $2} END {print n + 0}'
}
# The mesh pod's own connection to a plain pod elsewhere stays direct, both ways.
got=$(echo_get "$C" "$ip_q" 9000 "direct")
[ "$got" = "$ip_c direct" ] || fail "mesh pod c -> plain pod q on node b (direct): '$got'"
# No PeerAuthentication (PERMISSIVE): through node a's proxy, q's own address kept.
in0=$(mesh_counter "$A" mesh_in)
got=$(attempt "$Q" "$ip_s1" 9100)
[ "$got" = "seen $ip_q" ] || fail "plain pod q (node b) -> mesh pod s1 (node a) under PERMISSIVE: '$got'"
[ "$(mesh_counter "$A" mesh_in)" -gt "$in0" ] || fail "node a captured nothing from node b's plain pod (mesh_in)"
got=$(echo_get "$Q" "$ip_s1" 9000 "permissive")
[ "$got" = "$ip_q permissive" ] || fail "raw TCP q -> s1 under PERMISSIVE: '$got'"
cat > "$SVC_T/pa.yaml" <<EOF2
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: web-strict}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
EOF2
oc mesh apply -f "$SVC_T/pa.yaml"
sleep 0.5
r0=$(refused_strict)
: > "$accepts"
got=$(attempt "$Q" "$ip_s1" 9100)
[ "$got" = "closed" ] || fail "STRICT: plain pod q (node b) -> mesh pod s1 got '$got', want a close without data"
sleep 0.2
[ ! -s "$accepts" ] || fail "STRICT: the server pod saw the refused connection: $(cat "$accepts")"
[ "$(refused_strict)" -gt "$r0" ] || fail "STRICT: no plaintext_strict refusal in node a's metrics"
[ "$(get "$C" "http://$ip_s1:8080/")" = "$S1 $ip_c" ] || fail "STRICT refused the mesh client c"
got=$(echo_get "$C" "$ip_q" 9000 "still-direct")
[ "$got" = "$ip_c still-direct" ] || fail "under STRICT, mesh pod c -> plain pod q (direct): '$got'"
sed -i 's/STRICT/PERMISSIVE/' "$SVC_T/pa.yaml"
oc mesh apply -f "$SVC_T/pa.yaml"
sleep 0.5
got=$(attempt "$Q" "$ip_s1" 9100)
[ "$got" = "seen $ip_q" ] || fail "PERMISSIVE: plain pod q -> mesh pod s1: '$got'"
grep -qx "$ip_q" "$accepts" || fail "PERMISSIVE: the server did not log q's address: $(cat "$accepts")"

step "a Service whose endpoint is a plain pod on node b, from a mesh pod: L4 and L7, the client's own address"
serve "$Q" 8080
cat > "$SVC_T/plain.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: plain-$ID, labels: {app: plain}}
spec: {kind: pod, pod: $Q}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: plain}
spec:
  selector: {app: plain}
  clusterIP: 10.96.64.11
  ports: [{name: echo, port: 9000, targetPort: 9000}, {name: http, port: 80, targetPort: 8080}]
EOF2
oc svc apply -f "$SVC_T/plain.yaml"
for _ in $(seq 50); do
  oc mesh status --node "$A" --json | jq -e '.services[] | select(.name == "plain") | .endpoints | length == 1' \
    >/dev/null && break
  sleep 0.1
done
got=$(echo_get "$C" 10.96.64.11 9000 "via-service")
[ "$got" = "$ip_c via-service" ] || fail "mesh pod c -> Service plain (L4) -> plain pod q on node b: '$got'"
[ "$(get "$C" "http://10.96.64.11/")" = "$Q $ip_c" ] ||
  fail "mesh pod c -> Service plain (L7) -> plain pod q on node b: $(get "$C" "http://10.96.64.11/")"
! metrics | grep -q 'reason="remote_endpoint_not_in_mesh"' || fail "the proxy still refuses a remote plain endpoint"

step "nothing of the mesh in any pod's namespace"
for p in "$C" "$S1" "$P" "$Q"; do assert_pod_untouched "$p"; done

step "the VPC's mesh return link goes with the node's last mesh pod of it"
ocm_links() { ip -n "oc-$1-soc" -o link show | awk -F': ' '$2 ~ /^ocm[0-9]+(@|$)/ { split($2, a, "@"); print a[1] }'; }
[ -n "$(ocm_links "$B")" ] || fail "node b has no mesh return link while its mesh pod s2 is up"
cni DEL "$B" "$S2" sm default >/dev/null || fail "CNI DEL of mesh pod s2"
for _ in $(seq 50); do [ -z "$(ocm_links "$B")" ] && break; sleep 0.1; done
[ -z "$(ocm_links "$B")" ] || fail "node b kept its mesh return link after its last mesh pod left: $(ocm_links "$B")"
[ -n "$(ocm_links "$A")" ] || fail "node a lost its mesh return link though its mesh pods remain"

echo "PASS"
