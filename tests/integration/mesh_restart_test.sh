#!/usr/bin/env bash
# Stopping the mesh proxy is a feature:
#  - `offcore mesh restart` (hot restart / upgrade) under wrk load through
#    the mesh: 0 socket errors, 0 non-2xx, and a long-lived TCP connection
#    opened before the restart keeps working after it;
#  - kill -9 of the proxy under load: the keeper replaces it and a new
#    connection works within 1 s;
#  - kill -9 of the keeper: the agent restarts it, the mesh works again;
#  - every worker epoch is sandboxed: in its mount namespace the CA key is
#    gone (the keeper's view still has it), block devices are gone, the
#    cluster state is read-only; CAP_SYS_ADMIN and CAP_SYS_PTRACE are out
#    of its bounding, permitted and effective sets, no_new_privs and its
#    seccomp filter are set, and a process with its capabilities cannot
#    read the keeper's /proc/PID/root.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/mesh_lib.sh"
A=mr$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: sr}\nspec: {vpc: default, cidr: 10.65.0.0/24}\n' > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml"
mesh_up "$A"
C=rc$ID S=rs$ID
mesh_pod_add "$A" "$C" sr; ip_c=$POD_IP
mesh_pod_add "$A" "$S" sr; ip_s=$POD_IP
nginx_serve "$S" 8080
echo_serve "$S" 9000
[ "$(get "$C" "http://$ip_s:8080/")" = "$S" ] || fail "no answer through the mesh before the restart"
epoch() { oc mesh status --node "$A" --json | jq -r '.epoch'; }
CA_KEY=$SVC_T/cluster/mesh/ca/ca.key
# sandbox_check: the current worker epoch cannot reach the CA key.
sandbox_check() {
  local pid keeper caps bits out
  pid=$(oc mesh status --node "$A" --json | jq -r '.pid')
  keeper=$(oc dpu status --name "$A" --json | jq -r '.services[] | select(.name == "mesh") | .pid')
  [ -s "$CA_KEY" ] || fail "the keeper's CA key $CA_KEY is missing"
  nsenter -t "$keeper" -m cat "$CA_KEY" >/dev/null || fail "the keeper's own view lost the CA key"
  out=$(nsenter -t "$pid" -m cat "$CA_KEY" 2>&1) && fail "the worker (pid $pid) can read the CA key: $(echo "$out" | head -1)"
  echo "worker $pid: cat ca.key: $out"
  out=$(nsenter -t "$pid" -m find /dev -type b 2>&1)
  [ -z "$out" ] || fail "the worker sees block devices: $out"
  out=$(nsenter -t "$pid" -m touch "$SVC_T/cluster/state.json" 2>&1) && fail "the worker can write the cluster state"
  echo "worker $pid: touch state.json: $out"
  caps=$(grep -E '^(Cap(Prm|Eff|Bnd)|NoNewPrivs):' "/proc/$pid/status")
  echo "$caps"
  for set in CapPrm CapEff CapBnd; do
    bits=$((16#$(echo "$caps" | awk -v s="$set:" '$1 == s {print $2}')))
    (( bits & (1 << 21) )) && fail "the worker still has CAP_SYS_ADMIN in $set"
    (( bits & (1 << 19) )) && fail "the worker still has CAP_SYS_PTRACE in $set"
    (( bits & (1 << 12) )) || fail "the worker lost CAP_NET_ADMIN in $set (it needs it for IP_TRANSPARENT)"
  done
  echo "$caps" | grep -q 'NoNewPrivs:[[:space:]]*1' || fail "the worker runs without no_new_privs"
  grep -q '^Seccomp:[[:space:]]*2' "/proc/$pid/status" || fail "the worker runs without its seccomp filter (no new unix sockets)"
  # With the worker's capabilities (root's uid, no CAP_SYS_PTRACE).
  out=$(setpriv --inh-caps=-all --bounding-set=-all,+net_admin,+net_raw,+net_bind_service \
    ls "/proc/$keeper/root/" 2>&1) && fail "a process with the worker's capabilities can read the keeper's root"
  echo "worker capabilities: ls /proc/$keeper/root: $out"
}

step "the worker is sandboxed away from the CA key"
sandbox_check

step "a long-lived connection opened before the restarts"
ip netns exec "$C" python3 -c '
import socket, sys, time
c = socket.create_connection((sys.argv[1], 9000), timeout=5)
for i in range(12):
    c.sendall(b"ping%d" % i)
    got = c.recv(100).decode()
    assert got.endswith("ping%d" % i), got
    time.sleep(0.5)
print("long-lived ok")' "$ip_s" > "$SVC_T/long.out" 2>&1 &
long=$!

step "hot restart twice under wrk load"
e0=$(epoch)
ip netns exec "$C" wrk -t1 -c20 -d6s "http://$ip_s:8080/" > "$SVC_T/wrk.out" 2>&1 &
wrk_pid=$!
sleep 1.5
oc mesh restart --node "$A"
sleep 1.5
oc mesh restart --node "$A"
wait $wrk_pid || fail "wrk failed: $(cat "$SVC_T/wrk.out")"
cat "$SVC_T/wrk.out"
[ "$(epoch)" -eq $((e0 + 2)) ] || fail "expected epoch $((e0 + 2)) after two restarts, got $(epoch)"
reqs=$(sed -n 's/^ *\([0-9]*\) requests in.*/\1/p' "$SVC_T/wrk.out")
[ "${reqs:-0}" -gt 1000 ] || fail "wrk made only ${reqs:-0} requests through the mesh"
[ "$(wrk_errors "$(cat "$SVC_T/wrk.out")")" = 0 ] || fail "the hot restart cost requests: $(grep -E 'Socket errors|Non-2xx' "$SVC_T/wrk.out")"
wait $long || fail "the long-lived connection broke across the restarts: $(cat "$SVC_T/long.out")"

step "kill -9 of the proxy under load: back within 1 s"
pid=$(oc mesh status --node "$A" --json | jq -r '.pid')
ip netns exec "$C" wrk -t1 -c10 -d3s "http://$ip_s:8080/" > "$SVC_T/wrk2.out" 2>&1 &
wrk_pid=$!
sleep 1
kill -9 "$pid"
t0=$(date +%s%N)
until [ "$(get "$C" "http://$ip_s:8080/" 2>/dev/null)" = "$S" ]; do
  [ $(( ($(date +%s%N) - t0) / 1000000 )) -lt 5000 ] || fail "no new connection within 5 s of kill -9"
  sleep 0.02
done
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
echo "a new connection worked $ms ms after kill -9 of the proxy"
[ "$ms" -le 1000 ] || fail "the mesh took $ms ms (> 1 s) to come back after kill -9"
wait $wrk_pid || true
[ "$(oc mesh status --node "$A" --json | jq -r '.pid')" != "$pid" ] || fail "the same proxy pid answers after kill -9"
sandbox_check

step "kill -9 of the keeper: the agent restarts it"
keeper=$(oc dpu status --name "$A" --json | jq -r '.services[] | select(.name == "mesh") | .pid')
kill -9 "$keeper"
for _ in $(seq 100); do
  [ "$(get "$C" "http://$ip_s:8080/" 2>/dev/null)" = "$S" ] && break
  sleep 0.1
done
[ "$(get "$C" "http://$ip_s:8080/")" = "$S" ] || fail "the mesh did not come back after kill -9 of its keeper"
echo "PASS"
