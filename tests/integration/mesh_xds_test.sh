#!/usr/bin/env bash
# The xDS client against a real ADS server (tests/integration/xds_server.py,
# Python grpcio built from the same proto subset) on 127.0.0.1: the first
# snapshot has the routes, clusters and endpoints of the server's file; a
# changed file is a new version; a bad resource is NACKed (the server logs
# it) and the last good snapshot stays; a killed and restarted server is
# reconnected to. Needs no node.
source "$(dirname "$0")/lib.sh"

T=$(mktemp -d /tmp/offcore-xds-$ID.XXXX)
cleanup "rm -rf $T"
SERVER="$(dirname "$0")/xds_server.py"
SRV_PID=

config() {  # config VERSION V1_WEIGHT LB [TYPE]
  cat > "$T/config.json.tmp" <<EOF2
{"version": "$1", "services": [
 {"host": "web", "vip": "10.96.0.10", "port": 80, "protocol": "http",
  "endpoints": [{"ip": "10.1.0.2", "port": 8080, "labels": {"version": "v1"}},
                {"ip": "10.1.0.3", "port": 8080, "labels": {"version": "v2"}, "health": "UNHEALTHY"}],
  "subsets": {"v1": {"version": "v1"}, "v2": {"version": "v2"}},
  "lb": "$3", "type": "${4:-EDS}", "circuit_breakers": {"max_connections": 10, "max_pending_requests": 5},
  "outlier_consecutive_5xx": 3,
  "routes": [{"prefix": "/api", "headers": {"x-canary": "1"}, "clusters": {"v2": 100}},
             {"prefix": "/", "clusters": {"v1": $2, "v2": $((100 - $2))}, "timeout_ms": 2000,
              "retries": {"retry_on": "5xx,reset", "num_retries": 2, "per_try_timeout_ms": 500}}]},
 {"host": "db", "vip": "10.96.0.11", "port": 5432, "protocol": "tcp",
  "endpoints": [{"ip": "10.1.0.4", "port": 5432}]}]}
EOF2
  mv "$T/config.json.tmp" "$T/config.json"  # atomic: the server polls the file
}

start_server() {  # start_server PORT
  /usr/bin/python3 "$SERVER" --config "$T/config.json" --port "$1" > "$T/server.out" 2>> "$T/server.log" &
  SRV_PID=$!
  cleanup "kill $SRV_PID"
  for _ in $(seq 100); do grep -q '^listening on' "$T/server.out" 2>/dev/null && break; sleep 0.1; done
  grep -q '^listening on' "$T/server.out" || { cat "$T/server.log"; fail "xds_server.py did not start"; }
}

wait_for() {  # wait_for FILE PATTERN SECONDS WHAT
  for _ in $(seq $(( $3 * 10 ))); do grep -qE "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
  echo "== $1"; cat "$1" || true; echo "== server log"; cat "$T/server.log"
  fail "$4"
}

step "server with version 1; xds-dump sees routes, clusters, endpoints"
config 1 90 LEAST_REQUEST
start_server 0
PORT=$(sed -n 's/^listening on 127.0.0.1:\([0-9]*\)$/\1/p' "$T/server.out")
[ -n "$PORT" ] || fail "no port in $(cat "$T/server.out")"
oc mesh xds-dump --server 127.0.0.1:$PORT --node-id xds-$ID --json --timeout 20 > "$T/dump1.json"
S='.snapshot'
[ "$(jq -r '.versions | [.lds,.rds,.cds,.eds] | join(",")' "$T/dump1.json")" = "1,1,1,1" ] || fail "versions: $(jq -c .versions "$T/dump1.json")"
[ "$(jq -r "$S.services[] | select(.name==\"web\") | .vip" "$T/dump1.json")" = 10.96.0.10 ] || fail "web's VIP"
[ "$(jq -r "$S.services[] | select(.name==\"web\") | .ports[0] | \"\(.port)/\(.appProtocol)->\(.targetPort)\"" "$T/dump1.json")" = "80/http->8080" ] || fail "web's port"
[ "$(jq -r "$S.services[] | select(.name==\"db\") | .ports[0].appProtocol" "$T/dump1.json")" = tcp ] || fail "db is TCP"
[ "$(jq -r "$S.services[] | select(.name==\"web\") | .endpoints | map(\"\(.ip):\(.healthy)\") | join(\" \")" "$T/dump1.json")" = "10.1.0.2:true 10.1.0.3:false" ] || fail "web's endpoints and health"
[ "$(jq -r "$S.virtualServices[] | select(.hosts==[\"web\"]) | .http[1].route | map(\"\(.subset)=\(.weight)\") | join(\" \")" "$T/dump1.json")" = "v1=90 v2=10" ] || fail "weighted split"
[ "$(jq -r "$S.virtualServices[] | select(.hosts==[\"web\"]) | .http[0].match[0] | \"\(.uri.prefix) \(.headers[\"x-canary\"].exact)\"" "$T/dump1.json")" = "/api 1" ] || fail "prefix + header match"
[ "$(jq -r "$S.virtualServices[] | select(.hosts==[\"web\"]) | .http[1] | \"\(.timeoutMs) \(.retries.attempts) \(.retries.perTryTimeoutMs) \(.retries.retryOn|join(\",\"))\"" "$T/dump1.json")" = "2000 2 500 5xx,reset" ] || fail "timeout and retries"
[ "$(jq -r "$S.destinationRules[] | select(.host==\"web\") | .trafficPolicy | \"\(.loadBalancer) \(.connectionPool.maxConnections) \(.connectionPool.http1MaxPendingRequests) \(.outlierDetection.consecutive5xxErrors)\"" "$T/dump1.json")" = "LEAST_REQUEST 10 5 3" ] || fail "cluster policy"
grep -q "ACK node=xds-$ID type=rds version=1" "$T/server.log" || fail "the server saw no RDS ACK"
echo "ok: $(jq -c "[$S.services[].name, ($S.virtualServices|length), ($S.destinationRules|length)]" "$T/dump1.json")"

step "a watching client; the file changes -> version 2 seen"
# "$OFFCORE" itself, not the oc function: $! must be the client, not a subshell.
"$OFFCORE" mesh xds-dump --server 127.0.0.1:$PORT --node-id watch-$ID --watch --json --timeout 0 > "$T/watch.jsonl" 2> "$T/watch.err" &
WATCH=$!
cleanup "kill $WATCH"
wait_for "$T/watch.jsonl" '"lds":"1"' 20 "the watcher got no first snapshot"
wait_for "$T/server.log" "ACK node=watch-$ID type=eds version=1" 10 "the server saw no EDS ACK"
config 2 50 ROUND_ROBIN
wait_for "$T/watch.jsonl" '"cds":"2".*"lds":"2"' 20 "the watcher did not see version 2"
oc mesh xds-dump --server 127.0.0.1:$PORT --node-id xds-$ID --wait-version 2 --json --timeout 20 > "$T/dump2.json"
[ "$(jq -r "$S.virtualServices[] | select(.hosts==[\"web\"]) | .http[1].route | map(\"\(.subset)=\(.weight)\") | join(\" \")" "$T/dump2.json")" = "v1=50 v2=50" ] || fail "version 2's split"
tail -1 "$T/watch.jsonl" | jq -e "$S.destinationRules[] | select(.host==\"web\") | .trafficPolicy.loadBalancer == \"ROUND_ROBIN\"" >/dev/null || fail "the watcher's v2 policy"

step "a bad resource (a STRICT_DNS cluster) is NACKed; the last good snapshot stays"
lines=$(wc -l < "$T/watch.jsonl")
config 3 50 ROUND_ROBIN STRICT_DNS  # only the clusters change, and they are bad
wait_for "$T/server.log" "NACK node=watch-$ID type=cds version=2 .*STRICT_DNS is not supported" 20 "the server logged no NACK"
wait_for "$T/watch.err" "NACK cds version 3: .*STRICT_DNS" 10 "the client did not report its NACK"
sleep 1
[ "$(wc -l < "$T/watch.jsonl")" -eq "$lines" ] || fail "a snapshot came out of a NACKed version: $(tail -1 "$T/watch.jsonl" | jq -c .versions)"
rc=0; err=$(oc mesh xds-dump --server 127.0.0.1:$PORT --node-id xds-$ID --wait-version 3 --timeout 3 2>&1 >/dev/null) || rc=$?
[ "$rc" -ne 0 ] || fail "version 3 was accepted"
[[ "$err" == *"no snapshot at version 3"* ]] || fail "unclear error: $err"
echo "ok (refused): $(tail -1 <<<"$err")"
tail -1 "$T/watch.jsonl" | jq -e '.versions.cds == "2"' >/dev/null || fail "the last good snapshot is not version 2"

step "the server is killed and restarted; the client reconnects and takes version 4"
kill "$SRV_PID"; wait "$SRV_PID" 2>/dev/null || true
wait_for "$T/watch.err" "disconnected:" 10 "the client did not notice the server going away"
config 4 70 RANDOM
start_server "$PORT"
wait_for "$T/watch.jsonl" '"cds":"4".*"lds":"4"' 30 "the watcher did not reconnect and see version 4"
tail -1 "$T/watch.jsonl" | jq -e "$S.virtualServices[] | select(.hosts==[\"web\"]) | .http[1].route[0].weight == 70" >/dev/null || fail "version 4's split"
[ "$(grep -c '^xds: connected to' "$T/watch.err")" -ge 2 ] || fail "no second connection in $(cat "$T/watch.err")"
echo "ok: $(grep -c '^xds: connected to' "$T/watch.err") connections, $(wc -l < "$T/watch.jsonl") snapshots"
