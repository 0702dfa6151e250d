#!/usr/bin/env bash
# gRPC through the node proxies at L7, on two software DPUs: a Service with
# appProtocol grpc, a C++ gRPC client and server (tests/tools/grpc_echo.cc)
# in mesh pods, HTTP/2 end to end (h2c upstream multiplexed, trailers):
#  - unary calls across nodes; the server sees the client pod's own address;
#  - a server-streaming call arrives message by message, not buffered whole;
#  - client streaming of 8 MiB (over the proxy's 1 MiB request buffer) arrives
#    whole (the server checks size and hash); a bidi call where each message
#    waits for the reply to the previous one (needs a streamed request);
#  - a VirtualService route by header (x-version) to a subset;
#  - local replies are gRPC-shaped: AuthorizationPolicy DENY -> PERMISSION_DENIED (7),
#    fault abort 503 -> UNAVAILABLE (14);
#  - retryOn: unavailable hides a server failing every 2nd call;
#  - grpc_status in the metrics on 15020 and in the access log;
#  - HTTP/2 upstream multiplexing: h2load against nginx (h2c) behind an
#    appProtocol http2 Service: thousands of streams, one upstream connection.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
GRPC_ECHO=${OFFCORE_GRPC_ECHO:-$(dirname "$OFFCORE")/../tests/offcore-grpc-echo}
[ -x "$GRPC_ECHO" ] || fail "no $GRPC_ECHO: build the tests (scripts/build.sh)"
A=ga$ID
B=gb$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
node_up "$B" --host-netns "gh$ID"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: sg}\nspec: {vpc: default, cidr: 10.67.0.0/24}\n' > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml"
mesh_up "$A"
mesh_up "$B"

C=gc$ID G1=gv1$ID G2=gv2$ID
mesh_pod_add "$A" "$C" sg frontend; ip_c=$POD_IP
mesh_pod_add "$A" "$G1" sg echo; ip_g1=$POD_IP
mesh_pod_add "$B" "$G2" sg echo; ip_g2=$POD_IP
# grpc_serve POD PORT [ARGS]: the echo server, answering with the pod's name.
grpc_serve() {
  ip netns exec "$1" "$GRPC_ECHO" serve --port "$2" --name "$1" "${@:3}" >/dev/null 2>&1 &
  cleanup "kill $!"
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  fail "the gRPC server in $1 did not listen on $2"
}
grpc_serve "$G1" 50051
grpc_serve "$G2" 50051
grpc_serve "$G1" 50052 --fail-every 2
# nginx speaking h2c (prior knowledge) only, in v1's pod.
ngx=$(mktemp -d "/tmp/ocnginx.$G1.XXXXXX"); mkdir -p "$ngx/tmp"
cleanup "rm -rf $ngx"
cat > "$ngx/nginx.conf" <<EOF2
worker_processes 1;
daemon off;
pid $ngx/nginx.pid;
error_log $ngx/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path $ngx/tmp/body; proxy_temp_path $ngx/tmp/proxy; fastcgi_temp_path $ngx/tmp/fcgi;
  uwsgi_temp_path $ngx/tmp/uwsgi; scgi_temp_path $ngx/tmp/scgi;
  server { listen 8080 http2; default_type text/plain; location / { return 200 "$G1\n"; } }
}
EOF2
ip netns exec "$G1" nginx -p "$ngx/" -e "$ngx/error.log" -c "$ngx/nginx.conf" &
cleanup "kill $!"
VIP=10.96.67.10
FLAKY=10.96.67.11
H2WEB=10.96.67.12
cat > "$SVC_T/svc.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: gv1-$ID, labels: {app: echo, version: v1}}
spec: {kind: pod, pod: $G1}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: gv2-$ID, labels: {app: echo, version: v2}}
spec: {kind: pod, pod: $G2}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: echo}
spec: {selector: {app: echo}, clusterIP: $VIP, ports: [{port: 50051, targetPort: 50051, appProtocol: grpc}]}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: flaky}
spec: {selector: {app: echo, version: v1}, clusterIP: $FLAKY, ports: [{port: 50052, targetPort: 50052, appProtocol: grpc}]}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: h2web}
spec: {selector: {app: echo, version: v1}, clusterIP: $H2WEB, ports: [{port: 80, targetPort: 8080, appProtocol: http2}]}
EOF2
oc svc apply -f "$SVC_T/svc.yaml"
cat > "$SVC_T/mesh.yaml" <<EOF2
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: echo}
spec:
  host: echo
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: echo}
spec:
  hosts: [echo]
  http:
  - name: local-v1
    match: [{headers: {x-version: {exact: v1}}}]
    route: [{destination: {host: echo, subset: v1}}]
  - name: abort
    match: [{headers: {x-fault: {exact: "1"}}}]
    fault: {abort: {percentage: {value: 100}, httpStatus: 503}}
    route: [{destination: {host: echo, subset: v2}}]
  - name: remote-v2
    route: [{destination: {host: echo, subset: v2}}]
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
  - name: no-retry
    match: [{headers: {x-no-retry: {exact: "1"}}}]
    route: [{destination: {host: flaky}}]
  - name: retry
    retries: {attempts: 2, retryOn: unavailable}
    route: [{destination: {host: flaky}}]
EOF2
oc mesh apply -f "$SVC_T/mesh.yaml"
for _ in $(seq 50); do
  oc mesh status --node "$A" --json | jq -e '.services[] | select(.name == "echo") | .endpoints | length == 2' >/dev/null && break
  sleep 0.1
done
# gcall ARGS...: the client in pod C against the VIP; prints its JSON line.
gcall() { ip netns exec "$C" "$GRPC_ECHO" call --target "$VIP:50051" "$@"; }

step "unary gRPC across nodes: 50 calls reach v2 on node b, which sees the client pod's address"
out=$(gcall --n 50) || fail "unary calls through the mesh failed: $out"
echo "$out"
[ "$(echo "$out" | jq -r .ok)" = 50 ] || fail "not all 50 calls succeeded: $out"
[ "$(echo "$out" | jq -r .server)" = "$G2" ] || fail "the calls did not reach v2 ($G2): $out"
[ "$(echo "$out" | jq -r .peer)" = "$ip_c" ] || fail "the server saw $(echo "$out" | jq -r .peer), not the client pod $ip_c"

step "route by header: x-version: v1 reaches v1 (node a)"
out=$(gcall --n 10 --header x-version=v1) || fail "x-version calls failed: $out"
[ "$(echo "$out" | jq -r '.servers | keys | join(",")')" = "$G1" ] || fail "x-version: v1 did not reach only $G1: $out"
[ "$(echo "$out" | jq -r .peer)" = "$ip_c" ] || fail "v1 saw $(echo "$out" | jq -r .peer), not $ip_c"

step "server streaming across nodes: the first message arrives long before the last is sent"
out=$(gcall --stream 4 --delay-ms 600) || fail "the streaming call failed: $out"
echo "$out"
[ "$(echo "$out" | jq -r .messages)" = 4 ] || fail "expected 4 messages: $out"
# The server sends message 0 at once and message 3 after 1.8 s.
assert_cmp "$(echo "$out" | jq -r .first_ms)" "<" 900 "first message (ms): the response was buffered"
assert_cmp "$(echo "$out" | jq -r .last_ms)" ">=" 1700 "last message (ms)"

step "client streaming across nodes: 8 MiB in 64 KiB messages reaches the server whole"
out=$(gcall --upload-mib 8 --deadline-ms 60000) || fail "the client-streaming call failed: $out"
echo "$out"
[ "$(echo "$out" | jq -r .bytes)" = 8388608 ] || fail "the server did not receive 8 MiB: $out"
[ "$(echo "$out" | jq -r .server)" = "$G2" ] || fail "the upload did not reach v2 ($G2): $out"
out=$(gcall --upload-mib 8 --deadline-ms 60000 --header x-version=v1) || fail "the client-streaming call to v1 failed: $out"
echo "same node: $out"

step "bidi across nodes: 50 messages, each sent after the reply to the previous one"
out=$(gcall --chat 50 --deadline-ms 10000) || fail "the bidi call failed (a proxy waiting for the end of the request deadlocks it): $out"
echo "$out"
[ "$(echo "$out" | jq -r .messages)" = 50 ] || fail "expected 50 replies in order: $out"

step "fault abort 503 reaches the gRPC client as UNAVAILABLE (14)"
out=$(gcall --n 3 --header x-fault=1 --expect-code 14) || fail "expected grpc-status 14 from the injected fault: $out"

step "retryOn: unavailable: a server failing every 2nd call looks healthy with retries, not without"
out=$(ip netns exec "$C" "$GRPC_ECHO" call --target "$FLAKY:50052" --n 20) || fail "calls with retries failed: $out"
echo "$out"
out=$(ip netns exec "$C" "$GRPC_ECHO" call --target "$FLAKY:50052" --n 20 --header x-no-retry=1 --expect-code 14) || true
echo "$out"
assert_cmp "$(echo "$out" | jq -r '.failures["14"] // 0')" ">=" 8 "UNAVAILABLE answers without retries"

step "AuthorizationPolicy DENY of /offcore.test.Echo/Count gives PERMISSION_DENIED (7); Echo stays allowed"
cat > "$SVC_T/authz.yaml" <<EOF2
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: no-count}
spec:
  selector: {matchLabels: {app: echo}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/offcore.test.Echo/Count"]}}]
EOF2
oc mesh apply -f "$SVC_T/authz.yaml"
denied=0
for _ in $(seq 30); do
  if out=$(gcall --stream 2 --expect-code 7); then denied=1; break; fi
  sleep 0.1
done
[ "$denied" = 1 ] || fail "Count was not denied with grpc-status 7: $out"
out=$(gcall --n 5) || fail "Echo was denied too: $out"

step "grpc_status in the metrics on 15020 and in the access log"
m=""
for _ in $(seq 20); do
  m=$(ip netns exec "oc-$A-soc" curl -s --max-time 2 http://127.0.0.1:15020/metrics)
  echo "$m" | grep -Eq 'offcore_mesh_requests_total\{[^}]*grpc_status="7"' && break
  sleep 0.1
done
echo "$m" | grep -Eq 'offcore_mesh_requests_total\{[^}]*route="echo/remote-v2"[^}]*grpc_status="0"' ||
  fail "no grpc_status=\"0\" series for the unary calls: $(echo "$m" | grep offcore_mesh_requests_total)"
echo "$m" | grep -Eq 'offcore_mesh_requests_total\{[^}]*grpc_status="14"' || fail "no grpc_status=\"14\" series (fault)"
echo "$m" | grep -Eq 'offcore_mesh_requests_total\{[^}]*grpc_status="7"' || fail "no grpc_status=\"7\" series (denied)"
echo "$m" | grep -Eq 'offcore_mesh_upstream_h2_streams_total\{[^}]*\} ' || fail "no HTTP/2 upstream stream counter"
echo "$m" | grep -Eq 'offcore_mesh_retries_total\{[^}]*route="flaky/retry"' || fail "no retries counted for flaky/retry"
log=/run/offcore/$A/mesh-access.log
# The proxy writes its access log once a second (Envoy's flush interval).
denied=
for _ in $(seq 30); do
  denied=$(jq -c 'select(.path == "/offcore.test.Echo/Count" and .grpc_status == "7")' "$log")
  [ -n "$denied" ] && break
  sleep 0.1
done
[ -n "$denied" ] || fail "the denied Count call is not in the access log with grpc_status 7"

step "HTTP/2 upstream multiplexing: h2load (2000 requests, 20 concurrent streams) shares one upstream connection"
for _ in $(seq 100); do
  ip netns exec "$G1" ss -Hltn "sport = :8080" | grep -q . && break
  sleep 0.05
done
ip netns exec "$C" h2load -n 2000 -c 1 -m 20 "http://$H2WEB/" > "$SVC_T/h2load.out" 2>&1 || fail "h2load failed: $(cat "$SVC_T/h2load.out")"
grep -q "2000 succeeded, 0 failed" "$SVC_T/h2load.out" || fail "h2load through the mesh: $(grep -E 'requests:|status codes' "$SVC_T/h2load.out")"
m=$(ip netns exec "oc-$A-soc" curl -s --max-time 2 http://127.0.0.1:15020/metrics)
metric() { echo "$m" | sed -n "s/^$1{cluster=\"h2web:80\"} //p"; }
conns=$(metric offcore_mesh_upstream_h2_connections_total) streams=$(metric offcore_mesh_upstream_h2_streams_total)
peak=$(metric offcore_mesh_upstream_h2_peak_streams)
echo "upstream HTTP/2 connections=$conns streams=$streams peak concurrent streams=$peak"
[ -n "$conns" ] || fail "no HTTP/2 upstream connection counted for h2web: $(echo "$m" | grep upstream_h2)"
assert_cmp "$conns" "<=" 2 "upstream connections for 2000 requests"
assert_cmp "$streams" ">=" 2000 "upstream streams"
assert_cmp "$peak" ">=" 5 "concurrent streams on one upstream connection"
echo "PASS"
