#!/usr/bin/env bash
# Probe failover under load: wrk drives a ClusterIP with keep-alive
# connections while one of three backends is killed. Connections already on
# a surviving backend never fail (conntrack pins them, whatever the table
# does); only the dead backend's connections may; new connections succeed
# again within 2 s (the probe removes the backend from the Maglev table).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
command -v wrk >/dev/null || fail "wrk is not installed (scripts/setup.sh installs it)"
A=fa$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
cat > "$SVC_T/net.yaml" <<EOF
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vf}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: sf}
spec: {vpc: vf, cidr: 10.63.0.0/24}
EOF
oc svc apply -f "$SVC_T/net.yaml"
pods=()
for i in 1 2 3; do
  p=b$i-$ID
  pod_add "$A" "$p" sf vf
  serve "$p" 8080
  pods+=("$p")
done
CL=cl-$ID WK=wk-$ID
pod_add "$A" "$CL" sf vf
pod_add "$A" "$WK" sf vf
{
  cat <<EOF
apiVersion: offcore.io/v1
kind: Service
metadata: {name: fo}
spec: {type: ClusterIP, vpc: vf, clusterIP: 10.96.63.10, ports: [{port: 80, targetPort: 8080}], selector: {app: fo}}
EOF
  for i in 1 2 3; do
    cat <<EOF
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: b$i, labels: {app: fo}}
spec: {kind: pod, vpc: vf, pod: b$i-$ID}
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: b$i}
spec: {backend: b$i, type: tcp, port: 8080, intervalMs: 200, timeoutMs: 150, failureThreshold: 2}
EOF
  done
} > "$SVC_T/svc.yaml"
oc svc apply -f "$SVC_T/svc.yaml"
wait_programmed fo
sleep 1

step "load: wrk with keep-alive through the ClusterIP, plus 9 watched keep-alive connections"
ip netns exec "$WK" wrk -t1 -c16 -d8s http://10.96.63.10/ > "$SVC_T/wrk.txt" 2>&1 &
wrk_pid=$!
cleanup "kill $wrk_pid"
# Each watched connection remembers which backend it landed on and logs
# every failure with a timestamp; new connections are tried every 50 ms.
ip netns exec "$CL" python3 -c '
import http.client, json, sys, time
deadline = time.time() + 7
conns = []
for i in range(9):
    c = http.client.HTTPConnection("10.96.63.10", 80, timeout=1)
    c.request("GET", "/"); backend = c.getresponse().read().decode().split()[0]
    conns.append({"c": c, "backend": backend, "fail": None})
fresh = []
while time.time() < deadline:
    for w in conns:
        if w["fail"]: continue
        try:
            w["c"].request("GET", "/"); w["c"].getresponse().read()
        except Exception as e:
            w["fail"] = time.time()
    t = time.time()
    try:
        c = http.client.HTTPConnection("10.96.63.10", 80, timeout=0.5)
        c.request("GET", "/"); c.getresponse().read(); c.close(); fresh.append((t, True))
    except Exception:
        fresh.append((t, False))
    time.sleep(0.05)
print(json.dumps({"conns": [{"backend": w["backend"], "fail": w["fail"]} for w in conns],
                  "fresh_failures": [t for t, ok in fresh if not ok], "fresh": len(fresh)}))
' > "$SVC_T/watch.json" &
watch_pid=$!
sleep 2
victim=${pods[0]}
kill_at=$(date +%s.%N)
kill "${SERVER_PID[$victim]}"
echo "killed $victim at $kill_at"
wait "$watch_pid" || fail "the watcher failed: $(cat "$SVC_T/watch.json")"
wait "$wrk_pid" || true
cat "$SVC_T/wrk.txt"
jq -c . "$SVC_T/watch.json"

step "connections on surviving backends never failed"
jq -e --arg v "$victim" '[.conns[] | select(.backend != $v and .fail != null)] | length == 0' "$SVC_T/watch.json" >/dev/null ||
  fail "a connection on a surviving backend failed: $(cat "$SVC_T/watch.json")"
survivors=$(jq --arg v "$victim" '[.conns[] | select(.backend != $v)] | length' "$SVC_T/watch.json")
assert_cmp "$survivors" ">=" 3 "watched connections on surviving backends"

step "new connections succeed again within 2 s of the kill"
last=$(jq -r '.fresh_failures | max // 0' "$SVC_T/watch.json")
recovery=$(awk -v a="$kill_at" -v b="$last" 'BEGIN{ d = b - a; if (d < 0) d = 0; printf "%.2f", d }')
echo "last failed new connection ${recovery}s after the kill"
assert_cmp "$recovery" "<=" 2.0 "seconds until new connections stop failing"
reqs=$(awk '/requests in/ {print $1}' "$SVC_T/wrk.txt")
assert_cmp "${reqs:-0}" ">" 1000 "requests wrk completed through the VIP"
oc svc get fo --json | jq -e --arg b b1 '.endpoints[] | select(.backend==$b or .name==$b) | .health == "unhealthy"' >/dev/null ||
  fail "svc get does not show b1 unhealthy: $(oc svc get fo --json)"
