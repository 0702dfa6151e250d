#!/usr/bin/env bash
# The mesh at L7 and its security, on two software DPUs, configured with
# Istio-shaped documents through `offcore mesh apply`, driven by real
# clients (curl, python http.client, nghttp/h2load for HTTP/2):
#  - a header route, a weighted split between subsets on two nodes, fault
#    injection, AuthorizationPolicy deny, HTTP/2 (h2c) through the mesh;
#  - between nodes the fabric carries only TLS (a capture on the fabric
#    bridge sees HBONE on 15008 and no plaintext HTTP);
#  - PeerAuthentication STRICT refuses a plain pod, PERMISSIVE accepts it;
#  - 16 MiB HTTP/1.1 uploads (curl, Content-Length and chunked) stream through
#    the proxies (over the 1 MiB request buffer) to a server that answers the
#    sha256 of what it received, on the same node and across nodes; upload
#    speed through the mesh vs direct, and the proxy's peak RSS meanwhile.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
A=la$ID
B=lb$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
node_up "$B" --host-netns "lh$ID"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: sl}\nspec: {vpc: default, cidr: 10.66.0.0/24}\n' > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml"
mesh_up "$A"
mesh_up "$B"

C=lc$ID V1=lv1$ID V2=lv2$ID P=lp$ID
mesh_pod_add "$A" "$C" sl frontend; ip_c=$POD_IP
mesh_pod_add "$A" "$V1" sl web; ip_v1=$POD_IP
mesh_pod_add "$B" "$V2" sl web; ip_v2=$POD_IP
pod_add "$A" "$P" sl default; ip_p=$POD_IP
serve "$V1" 8080
nginx_serve "$V2" 8080
# sha_serve POD PORT: answers a PUT/POST with "<sha256> <size>" of its body
# (Content-Length or chunked).
sha_serve() {
  ip netns exec "$1" python3 -c '
import hashlib, http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def body(self):
        h, n = hashlib.sha256(), 0
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b""): pass
                    return h, n
                left = size
                while left:
                    d = self.rfile.read(min(left, 1 << 16)); h.update(d); n += len(d); left -= len(d)
                self.rfile.readline()
        left = int(self.headers.get("Content-Length", "0"))
        while left:
            d = self.rfile.read(min(left, 1 << 16))
            if not d: break
            h.update(d); n += len(d); left -= len(d)
        return h, n
    def do_PUT(self):
        h, n = self.body()
        out = ("%s %d\n" % (h.hexdigest(), n)).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(out))); self.end_headers()
        self.wfile.write(out)
    do_POST = do_PUT
http.server.ThreadingHTTPServer(("0.0.0.0", int(sys.argv[1])), H).serve_forever()' "$2" >/dev/null 2>&1 &
  cleanup "kill $!"
  for _ in $(seq 100); do
    ip netns exec "$1" ss -Hltn "sport = :$2" | grep -q . && return 0
    sleep 0.05
  done
  fail "the sha256 server in $1 did not listen on $2"
}
sha_serve "$V1" 8081
sha_serve "$V2" 8081
VIP=10.96.66.10
UPA=10.96.66.11
UPB=10.96.66.12
cat > "$SVC_T/svc.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: v1-$ID, labels: {app: web, version: v1}}
spec: {kind: pod, pod: $V1}
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: v2-$ID, labels: {app: web, version: v2}}
spec: {kind: pod, pod: $V2}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, clusterIP: $VIP, ports: [{port: 80, targetPort: 8080}]}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: upload-a}
spec: {selector: {app: web, version: v1}, clusterIP: $UPA, ports: [{port: 80, targetPort: 8081, appProtocol: http}]}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: upload-b}
spec: {selector: {app: web, version: v2}, clusterIP: $UPB, ports: [{port: 80, targetPort: 8081, appProtocol: http}]}
EOF2
oc svc apply -f "$SVC_T/svc.yaml"
cat > "$SVC_T/mesh.yaml" <<EOF2
apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: web}
spec:
  host: web
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web}
spec:
  hosts: [web]
  http:
  - name: canary-header
    match: [{headers: {x-canary: {exact: "1"}}}]
    route: [{destination: {host: web, subset: v2}}]
  - name: teapot
    match: [{uri: {prefix: /fault}}]
    fault: {abort: {percentage: {value: 100}, httpStatus: 418}}
    route: [{destination: {host: web, subset: v1}}]
  - name: split
    route:
    - {destination: {host: web, subset: v1}, weight: 80}
    - {destination: {host: web, subset: v2}, weight: 20}
---
apiVersion: security.istio.io/v1beta1
kind: AuthorizationPolicy
metadata: {name: no-admin}
spec:
  selector: {matchLabels: {app: web}}
  action: DENY
  rules:
  - from: [{source: {principals: ["cluster.local/ns/default/sa/frontend"]}}]
    to: [{operation: {paths: ["/admin*"]}}]
EOF2
oc mesh apply -f "$SVC_T/mesh.yaml"
for _ in $(seq 50); do
  oc mesh status --node "$A" --json | jq -e '.services[] | select(.name == "web") | .endpoints | length == 2' >/dev/null && break
  sleep 0.1
done
hget() { ip netns exec "$C" curl -s --max-time 3 "$@"; }
code() { ip netns exec "$1" curl -s -o /dev/null -w '%{http_code}' --max-time 3 "${@:2}"; }

step "route by header: x-canary: 1 always reaches v2 (node b)"
for _ in $(seq 10); do
  [ "$(hget -H 'x-canary: 1' "http://$VIP/")" = "$V2" ] || fail "x-canary request did not reach v2"
done

step "fault injection: /fault is aborted with 418 by the proxy"
[ "$(code "$C" "http://$VIP/fault")" = 418 ] || fail "expected 418 from the injected fault"

step "weighted split 80/20 between v1 (node a) and v2 (node b), 1000 requests on keep-alive"
shares=$(ip netns exec "$C" python3 -c '
import http.client, sys
c = http.client.HTTPConnection(sys.argv[1], 80, timeout=5)
n = {"v1": 0, "v2": 0}
for _ in range(1000):
    c.request("GET", "/"); body = c.getresponse().read().decode()
    n["v2" if body.startswith(sys.argv[3]) else "v1" if body.startswith(sys.argv[2]) else "x"] = n.get("v2" if body.startswith(sys.argv[3]) else "v1" if body.startswith(sys.argv[2]) else "x", 0) + 1
print(n["v1"], n["v2"], n.get("x", 0))' "$VIP" "$V1" "$V2")
read -r n1 n2 nx <<<"$shares"
echo "v1=$n1 v2=$n2 other=$nx"
[ "$nx" = 0 ] || fail "$nx answers came from neither subset"
[ "$n1" -ge 750 ] && [ "$n1" -le 850 ] || fail "v1 got $n1 of 1000 (want 800 +- 50)"

step "AuthorizationPolicy DENY: frontend may not reach /admin*, the rest is allowed"
[ "$(code "$C" "http://$VIP/admin/x")" = 403 ] || fail "/admin was not denied"
[ "$(code "$C" "http://$VIP/other")" = 200 ] || fail "/other was denied"

step "HTTP/2 (h2c) through the mesh: nghttp and h2load"
ip netns exec "$C" nghttp -n -s "http://$VIP/" > "$SVC_T/nghttp.out" 2>&1 || fail "nghttp failed: $(cat "$SVC_T/nghttp.out")"
ip netns exec "$C" h2load -n 400 -c 4 -m 8 "http://$VIP/" > "$SVC_T/h2load.out" 2>&1 || fail "h2load failed: $(cat "$SVC_T/h2load.out")"
grep -q "400 succeeded, 0 failed" "$SVC_T/h2load.out" || fail "h2load through the mesh: $(grep -E 'requests:|status codes' "$SVC_T/h2load.out")"

step "16 MiB uploads stream through the mesh: PUT (Content-Length) and chunked POST, same node and across nodes"
blob=$SVC_T/blob
head -c 16M /dev/urandom > "$blob"
want="$(sha256sum "$blob" | cut -d' ' -f1) 16777216"
worker=$(pgrep -f "mesh worker --node $A " | head -1)
[ -n "$worker" ] || fail "no mesh worker process for node $A"
rss_kib() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$worker/status"; }
echo "proxy (node $A) RSS before the uploads: $(rss_kib VmRSS) KiB"
echo 5 > "/proc/$worker/clear_refs"  # resets VmHWM: the peak from here on
for target in "$UPA" "$UPB"; do
  for mode in length chunked; do
    if [ "$mode" = length ]; then args=(-T "$blob"); else args=(-H 'Transfer-Encoding: chunked' --data-binary "@$blob"); fi
    out=$(ip netns exec "$C" curl -sS --max-time 120 "${args[@]}" -w '%{http_code} %{speed_upload}' "http://$target/up") ||
      fail "upload ($mode) to $target failed: $out"
    got=$(echo "$out" | head -1) res=$(echo "$out" | tail -1)
    [ "$got" = "$want" ] || fail "upload ($mode) to $target: the server received '$got', want '$want'"
    [ "${res%% *}" = 200 ] || fail "upload ($mode) to $target: HTTP ${res%% *}"
    echo "upload $mode -> $target: $(awk -v b="${res##* }" 'BEGIN {printf "%.1f", b / 1048576}') MiB/s through the mesh"
  done
done
peak=$(rss_kib VmHWM)
echo "proxy (node $A) peak RSS during the uploads: $peak KiB"
out=$(ip netns exec "$V1" curl -sS --max-time 60 -T "$blob" -w '%{speed_upload}' "http://127.0.0.1:8081/up")
echo "upload direct (in v1's pod, no proxy): $(awk -v b="$(echo "$out" | tail -1)" 'BEGIN {printf "%.1f", b / 1048576}') MiB/s"
m=$(ip netns exec "oc-$A-soc" curl -s --max-time 2 http://127.0.0.1:15020/metrics)
echo "$m" | grep -Eq 'offcore_mesh_request_bytes_total\{[^}]*cluster="upload-b:80"[^}]*\} [0-9]' ||
  fail "no request bytes counted for upload-b: $(echo "$m" | grep request_bytes)"

step "only TLS on the fabric between the node proxies"
cap=$SVC_T/fabric.pcap
ip netns exec oc-fabric tcpdump -i fab0 -U -w "$cap" tcp >/dev/null 2>&1 &
tcpd=$!
cleanup "kill $tcpd"
sleep 1
for _ in $(seq 5); do hget -H 'x-canary: 1' "http://$VIP/secret-path" >/dev/null; done
[ "$(hget "http://$ip_v2:8080/secret-direct")" = "$V2" ] || fail "c -> v2 by pod address across nodes"
sleep 1
kill "$tcpd"; wait "$tcpd" 2>/dev/null || true
tcpdump -r "$cap" -nn > "$SVC_T/fabric.txt" 2>/dev/null
tcpdump -r "$cap" -A > "$SVC_T/fabric.ascii" 2>/dev/null
grep -q "\.15008" "$SVC_T/fabric.txt" || fail "no HBONE (port 15008) traffic on the fabric"
! grep -q "\.8080[: ]" "$SVC_T/fabric.txt" || fail "plaintext to port 8080 crossed the fabric"
! grep -q "secret-" "$SVC_T/fabric.ascii" || fail "an HTTP path crossed the fabric in clear text"

step "PeerAuthentication: STRICT refuses a plain pod, PERMISSIVE accepts it"
[ "$(get "$P" "http://$ip_v1:8080/")" = "$V1 $ip_p" ] || fail "plain pod -> v1 under the default (PERMISSIVE)"
cat > "$SVC_T/pa.yaml" <<EOF2
apiVersion: security.istio.io/v1beta1
kind: PeerAuthentication
metadata: {name: web-mtls}
spec:
  selector: {matchLabels: {app: web}}
  mtls: {mode: STRICT}
EOF2
oc mesh apply -f "$SVC_T/pa.yaml"
sleep 0.5
! get "$P" "http://$ip_v1:8080/" >/dev/null 2>&1 || fail "STRICT let a plain pod in"
[ "$(hget "http://$ip_v1:8080/")" = "$V1 $ip_c" ] || fail "STRICT refused the mesh client"
sed -i 's/STRICT/PERMISSIVE/' "$SVC_T/pa.yaml"
oc mesh apply -f "$SVC_T/pa.yaml"
sleep 0.5
[ "$(get "$P" "http://$ip_v1:8080/")" = "$V1 $ip_p" ] || fail "PERMISSIVE refused the plain pod"

step "metrics on the SoC-local port, and the access log"
ip netns exec "oc-$A-soc" curl -s --max-time 2 http://127.0.0.1:15020/metrics > "$SVC_T/metrics.txt"
grep -Eq 'offcore_mesh_requests_total\{[^}]*route="web/split"' "$SVC_T/metrics.txt" ||
  fail "no per-route counter for web/split on 127.0.0.1:15020 in the SoC"
grep -q 'offcore_mesh_request_duration_ms_bucket' "$SVC_T/metrics.txt" || fail "no request duration histogram"
log=/run/offcore/$A/mesh-access.log
[ "$(stat -c %a "$log")" = 600 ] || fail "the access log is not 0600"
jq -c 'select(.path == "/admin/x")' "$log" | grep -q . || fail "the denied request is not in the access log"
echo "PASS"
