#!/usr/bin/env bash
# The retry budget, through the node proxy under concurrent load (wrk -c 20):
# a backend that answers 503 to everything (and counts what it sees), a route
# with `retries: {attempts: 5, retryOn: 5xx}`:
#  - no limit: the backend sees every request six times;
#  - DestinationRule connectionPool.http.maxRetries: 1 -> about one retry at a
#    time, the backend sees little more than the requests themselves, and
#    offcore_mesh_retry_overflow_total{cluster} grows;
#  - trafficPolicy.retryBudget (Istio 1.27+; Envoy's retry_budget) likewise.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
A=ra$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: srt}\nspec: {vpc: default, cidr: 10.69.0.0/24}\n' > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml"
mesh_up "$A"
C=rtc$ID W=rtw$ID
mesh_pod_add "$A" "$C" srt frontend
mesh_pod_add "$A" "$W" srt flaky

# The backend: 503 after 20 ms to every request, counted; GET /count (from
# inside its own namespace) answers the count without counting itself.
ip netns exec "$W" python3 -c '
import http.server, threading, time
lock = threading.Lock(); hits = 0
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        global hits
        if self.path == "/count":
            with lock: body = b"%d\n" % hits
            self.send_response(200)
        else:
            with lock: hits += 1
            time.sleep(0.02)
            body = b"down\n"
            self.send_response(503)
        self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
class S(http.server.ThreadingHTTPServer):
    request_queue_size = 512
    daemon_threads = True
S(("0.0.0.0", 8080), H).serve_forever()' >/dev/null 2>&1 &
cleanup "kill $!"
for _ in $(seq 100); do
  ip netns exec "$W" curl -sf -o /dev/null http://127.0.0.1:8080/count && break
  sleep 0.05
done
hits() { ip netns exec "$W" curl -sf --max-time 2 http://127.0.0.1:8080/count; }
[ -n "$(hits)" ] || fail "the counting backend in $W did not start"

VIP=10.96.69.10
cat > "$SVC_T/svc.yaml" <<EOF2
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: flaky-$ID, labels: {app: flaky}}
spec: {kind: pod, pod: $W}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: flaky}
spec: {selector: {app: flaky}, clusterIP: $VIP, ports: [{port: 80, targetPort: 8080}]}
EOF2
oc svc apply -f "$SVC_T/svc.yaml"
cat > "$SVC_T/vs.yaml" <<EOF2
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
  - name: retry5
    retries: {attempts: 5, retryOn: 5xx}
    route: [{destination: {host: flaky}}]
EOF2
oc mesh apply -f "$SVC_T/vs.yaml"
for _ in $(seq 50); do
  oc mesh status --node "$A" --json | jq -e '.services[] | select(.name == "flaky") | .endpoints | length == 1' >/dev/null && break
  sleep 0.1
done
overflows() {
  ip netns exec "oc-$A-soc" curl -s --max-time 2 http://127.0.0.1:15020/metrics |
    sed -n 's/^offcore_mesh_retry_overflow_total{cluster="flaky:80"} \([0-9.e+]*\)$/\1/p' | awk '{printf "%d", $1}'
}

# load LABEL: wrk -c 20 for 3 s through the mesh; sets REQS (answered
# requests) and SEEN (what the backend received meanwhile).
load() {
  local before after
  before=$(hits)
  ip netns exec "$C" wrk -t1 -c20 -d3s --timeout 5s "http://$VIP/" > "$SVC_T/wrk-$1.out" 2>&1 || fail "wrk failed: $(cat "$SVC_T/wrk-$1.out")"
  sleep 0.5 # retries of the last requests wrk gave up on
  after=$(hits)
  REQS=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$SVC_T/wrk-$1.out")
  SEEN=$((after - before))
  [ "${REQS:-0}" -gt 100 ] || fail "wrk made only ${REQS:-0} requests through the mesh: $(cat "$SVC_T/wrk-$1.out")"
  grep -q "Non-2xx or 3xx responses: $REQS" "$SVC_T/wrk-$1.out" || fail "not every answer was the backend's 503: $(cat "$SVC_T/wrk-$1.out")"
  echo "$1: $REQS requests answered, the backend saw $SEEN"
}
# dr_apply YAML-TRAFFIC-POLICY: the DestinationRule of flaky with that policy.
dr_apply() {
  printf 'apiVersion: networking.istio.io/v1beta1\nkind: DestinationRule\nmetadata: {name: flaky}\nspec:\n  host: flaky\n  trafficPolicy:\n%s\n' "$1" > "$SVC_T/dr.yaml"
  oc mesh apply -f "$SVC_T/dr.yaml"
  sleep 1
}

step "no retry limit: every request is tried six times"
dr_apply "    loadBalancer: {simple: ROUND_ROBIN}"
o0=$(overflows)
load unlimited
[ "$SEEN" -ge $((REQS * 55 / 10)) ] || fail "without a retry limit the backend saw $SEEN for $REQS requests (want about 6x)"
[ "$(overflows)" = "${o0:-}" ] || fail "retry overflows counted without a limit: ${o0:-none} -> $(overflows)"

step "connectionPool.http.maxRetries: 1 -> about one retry in flight at a time"
dr_apply "    connectionPool: {http: {maxRetries: 1}}"
o1=$(overflows)
load max-retries-1
# One retry at a time, each at least 20 ms: at most 175 in 3.5 s, plus the
# 20 requests wrk left in flight (without a limit: 5 per request, >= 500).
[ $((SEEN - REQS)) -le 250 ] || fail "with maxRetries 1 the backend saw $SEEN for $REQS requests (want at most 250 retries)"
[ "$SEEN" -gt "$REQS" ] || fail "with maxRetries 1 no retry happened at all ($SEEN for $REQS)"
o2=$(overflows)
[ "${o2:-0}" -ge $((${o1:-0} + REQS / 2)) ] ||
  fail "offcore_mesh_retry_overflow_total{cluster=\"flaky:80\"} went from ${o1:-none} to ${o2:-none} for $REQS requests"

step "trafficPolicy.retryBudget: 5% of 20 in flight, at least 1 -> one retry at a time"
dr_apply "    retryBudget: {percent: 5, minRetryConcurrency: 1}"
load retry-budget
[ $((SEEN - REQS)) -le 250 ] || fail "with a 5% retry budget the backend saw $SEEN for $REQS requests (want at most 250 retries)"
[ "$(overflows)" -gt "$o2" ] || fail "the retry budget counted no overflow"
echo "PASS"
