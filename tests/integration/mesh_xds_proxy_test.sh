#!/usr/bin/env bash
# The node proxy configured only from an xDS server (ADS v3, state of the
# world): the test's control plane (tests/integration/xds_server.py, Python
# grpcio built from the same proto subset) runs on a fabric host, as a real
# one would; offcore's cluster state says only who the pods are. A route
# change pushed under wrk load through the mesh takes effect with 0 errors.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
A=xa$ID
H=xh$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
cleanup "\"$OFFCORE\" fabric host del $H"
oc fabric host add "$H" >/dev/null
cp_ip=$(oc fabric host list --json | jq -r --arg h "$H" '.[] | select(.name==$h) | .ip | sub("/.*"; "")')
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: sx}\nspec: {vpc: default, cidr: 10.67.0.0/24}\n' > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml"

C=xc$ID V1=xv1$ID V2=xv2$ID
VIP=10.96.67.10
config() {  # config VERSION V1_WEIGHT: the control plane's view of web
  cat > "$SVC_T/xds.json.tmp" <<EOF2
{"version": "$1", "services": [
 {"host": "web", "vip": "$VIP", "port": 80, "protocol": "http",
  "endpoints": [{"ip": "$ip_v1", "port": 8080, "labels": {"version": "v1"}},
                {"ip": "$ip_v2", "port": 8080, "labels": {"version": "v2"}}],
  "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
  "lb": "ROUND_ROBIN",
  "routes": [{"prefix": "/", "clusters": {"v1": $2, "v2": $((100 - $2))}}]}]}
EOF2
  mv "$SVC_T/xds.json.tmp" "$SVC_T/xds.json"
}

mesh_up_xds() {
  cleanup "\"$OFFCORE\" mesh down --node $A --force"
  oc mesh up --node "$A" --xds "$1"
}
step "the control plane on fabric host $H ($cp_ip)"
ip_v1=10.67.0.3 ip_v2=10.67.0.4  # what IPAM hands out next, checked below
config 1 100
ip netns exec "ocf-$H" /usr/bin/python3 "$(dirname "$0")/xds_server.py" --config "$SVC_T/xds.json" \
  --address "$cp_ip" --port 15010 > "$SVC_T/xds.out" 2> "$SVC_T/xds.log" &
xds_pid=$!
cleanup "kill $xds_pid"
for _ in $(seq 100); do grep -q '^listening on' "$SVC_T/xds.out" 2>/dev/null && break; sleep 0.1; done
grep -q '^listening on' "$SVC_T/xds.out" || fail "xds_server.py did not start: $(cat "$SVC_T/xds.log")"
mesh_up_xds "$cp_ip:15010"
mesh_pod_add "$A" "$C" sx frontend; ip_c=$POD_IP
mesh_pod_add "$A" "$V1" sx web; [ "$POD_IP" = "$ip_v1" ] || fail "v1 got $POD_IP, the test expected $ip_v1"
mesh_pod_add "$A" "$V2" sx web; [ "$POD_IP" = "$ip_v2" ] || fail "v2 got $POD_IP, the test expected $ip_v2"
nginx_serve "$V1" 8080
nginx_serve "$V2" 8080
# The Service exists in the cluster too (as Kubernetes Services do for
# istiod): that is what the dataplane captures. Routing is the control plane's.
printf 'apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: %s, selector: {app: xds-web}, ports: [{port: 80, targetPort: 8080}]}\n' "$VIP" > "$SVC_T/svc.yaml"
oc svc apply -f "$SVC_T/svc.yaml"

step "routes from xDS: everything to v1"
for _ in $(seq 100); do
  oc mesh status --node "$A" --json | jq -e '.configSource.updates >= 1 and .configSource.connected' >/dev/null && break
  sleep 0.1
done
oc mesh status --node "$A" --json | jq -e '.configSource.acks >= 4' >/dev/null ||
  fail "the proxy did not ACK the control plane: $(oc mesh status --node "$A" --json | jq -c .configSource)"
for _ in $(seq 10); do
  [ "$(get "$C" "http://$VIP/")" = "$V1" ] || fail "xDS routes all to v1, got '$(get "$C" "http://$VIP/")'"
done

step "a route change pushed under wrk load: 0 errors, and it takes effect"
ip netns exec "$C" wrk -t1 -c10 -d4s "http://$VIP/" > "$SVC_T/wrk.out" 2>&1 &
wrk_pid=$!
sleep 1.5
config 2 0
for _ in $(seq 100); do
  [ "$(get "$C" "http://$VIP/")" = "$V2" ] && break
  sleep 0.05
done
[ "$(get "$C" "http://$VIP/")" = "$V2" ] || fail "the pushed route (all to v2) did not take effect"
wait $wrk_pid || fail "wrk failed: $(cat "$SVC_T/wrk.out")"
cat "$SVC_T/wrk.out"
[ "$(wrk_errors "$(cat "$SVC_T/wrk.out")")" = 0 ] || fail "the config push cost requests: $(grep -E 'Socket errors|Non-2xx' "$SVC_T/wrk.out")"
grep -q "ACK" "$SVC_T/xds.log" || fail "the control plane logged no ACK"
echo "PASS"
