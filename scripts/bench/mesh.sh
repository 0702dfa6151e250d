#!/usr/bin/env bash
# Service mesh driver for `offcore bench mesh` (src/bench/mesh_suite.cc runs
# it and turns its output into the report). One JSON object per measurement
# goes to stdout (or --out FILE); progress goes to stderr.
#
#   mesh.sh [--runs N] [--quick] [--pods "10 30 60"] [--rate RPS]
#           [--duration S] [--out FILE] [--keep-logs DIR] [--no-rx-steering]
#           [--rt-priority N]
#
# --rt-priority N runs the node proxies at SCHED_FIFO priority N (`mesh up
# --rt-priority`). --no-rx-steering brings the nodes up without receive steering (config
# rx_steering: false), for a before/after. --keep-logs DIR keeps every run's per-request h2load logs there
# (DIR/<pods>-<mode>-<run>/h2l-<client>.log: start us, status, duration us).
#
# Two software DPUs (ocbma, ocbmb). At each pod count N, two sets of N pods
# (half nginx servers, half clients, alternating over the two nodes): plain
# pods and mesh pods ("mesh": true in their CNI config). The clients send a
# paced load (h2load --h1 --rps, one keep-alive connection each, RATE req/s
# in total) to a Service, four ways:
#   direct   plain pods, the Service's ClusterIP (offcore's BPF load balancer)
#   sidecar  plain pods, each with a haproxy sidecar in its own namespace and
#            nftables REDIRECT there (outbound: the Service VIP to 15001, which
#            balances over the server pods; inbound: port 80 to 15006, which
#            forwards to 127.0.0.1:80), Istio's sidecar mode with haproxy
#   l4       mesh pods, a Service with appProtocol tcp: the node proxies in
#            the SoCs pass TCP through, HBONE (mTLS) between nodes
#   l7       mesh pods, appProtocol http and a VirtualService (route, retries,
#            timeout): the node proxies parse and route every request
# Each measurement records requests, errors, latency percentiles (from the
# per-request h2load log), the busy time of the host and SoC cpus (and the
# nodes' host and SoC cgroups, as cg_*), and
# the memory (PSS) of the mesh: the sidecars, or the node proxies.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../tests/integration/lib.sh"
source "$HERE/lib.sh"
bench_traps mesh.sh

RUNS=3 QUICK=0 PODS="10 30 60" RATE=1000 DURATION= OUT= KEEP_LOGS= RX_STEERING=true RT_PRIO=0
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --pods) PODS=$2; shift 2 ;;
    --rate) RATE=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --keep-logs) KEEP_LOGS=$2; shift 2 ;;
    --no-rx-steering) RX_STEERING=false; shift ;;
    --rt-priority) RT_PRIO=$2; shift 2 ;;
    *) fail "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ "$QUICK" = 1 ] && { PODS=10; DURATION=${DURATION:-3}; RUNS=1; }
DURATION=${DURATION:-10}
for n in $PODS; do
  [[ $n =~ ^[0-9]+$ ]] && [ "$n" -ge 4 ] && [ $(( n % 2 )) = 0 ] || fail "--pods takes even counts >= 4, got $n"
done
# Results on fd 3; everything else (our progress, tools' chatter) on stderr.
if [ -n "$OUT" ]; then exec 3>>"$OUT"; else exec 3>&1; fi
exec 1>&2

[ "$(id -u)" = 0 ] || fail "run as root (namespaces, nft, cgroups)"
for t in h2load haproxy nginx nft jq curl; do command -v $t >/dev/null || fail "$t is missing; apt-get install it"; done
leftover=$(ip netns list | awk '{print $1}' | grep '^ocbm' || true)
for n in ocbma ocbmb; do [ ! -e "/run/offcore/$n" ] || leftover+=" node:$n"; done
[ -z "$leftover" ] || fail "left from an earlier run: $(echo $leftover); remove them (ip netns delete NAME, offcore dpu down --name ocbma/ocbmb)"
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi

work=$(mktemp -d /var/tmp/ocbm-mesh-XXXX); cleanup "rm -rf $work"
NODES=(ocbma ocbmb)
VIP_PLAIN=10.96.89.10 VIP_L4=10.96.89.11 VIP_L7=10.96.89.12

pss_kib() {  # summed PSS of the pids given
  local s=0 p v
  for p in "$@"; do
    v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
    s=$(( s + ${v:-0} ))
  done
  echo "$s"
}
# --- the machine's own stalls ---------------------------------------------

# machine_stalls WHEN: how long each cpu stops running a SCHED_FIFO spinner
# (interrupts, kernel work, the hypervisor taking the vcpu away), 3 s per
# cpu, one after the other, with no load running (stall_probe.py). The
# tail latency rows are read against these.
machine_stalls() {
  local c j
  for c in $HOST_CPUS $SOC_CPUS; do
    j=$(python3 "$HERE/stall_probe.py" --cpu "$c" --seconds 3) || { echo "    stall probe on cpu $c failed"; continue; }
    jq -c --arg when "$1" '{case: "machine", when: $when} + .' <<<"$j" >&3
    jq -r --arg when "$1" '"    cpu \(.cpu) \($when): \(.stalls) stalls over 1 ms in \(.seconds) s, \(.stall_ms) ms in all, longest \(.max_ms) ms"' <<<"$j"
  done
}

HOST_CGS="offcore/ocbma/host offcore/ocbmb/host" SOC_CGS="offcore/ocbma/soc offcore/ocbmb/soc"

# --- nodes and node proxies -------------------------------------------------

export OFFCORE_CONFIG=$work/config.json
echo "{\"cluster_dir\": \"$work/cluster\", \"rx_steering\": $RX_STEERING}" > "$OFFCORE_CONFIG"
CNI=$(dirname "$OFFCORE")/offcore-cni
[ -x "$CNI" ] || fail "the CNI plugin $CNI is missing; build it (ninja offcore-cni)"
step "nodes ${NODES[*]} and their mesh proxies"
for n in "${NODES[@]}"; do
  cleanup "ip netns delete ocbm-h${n#ocbm}"
  node_up "$n" --host-netns "ocbm-h${n#ocbm}" >/dev/null
  cleanup "\"$OFFCORE\" mesh down --node $n --force"
  oc mesh up --node "$n" --rt-priority "$RT_PRIO" >/dev/null
done
# The cpus each domain runs on (both nodes; on a 2-cpu machine they share
# them): CPU is measured per cpu, where the work ran (lib.sh cpus_busy).
HOST_CPUS= SOC_CPUS=
for n in "${NODES[@]}"; do
  HOST_CPUS+=" $(oc dpu status --name "$n" --json | jq -r .domains.host.cpus)"
  SOC_CPUS+=" $(oc dpu status --name "$n" --json | jq -r .domains.soc.cpus)"
done
HOST_CPUS=$(expand_cpus <<<"$HOST_CPUS") SOC_CPUS=$(expand_cpus <<<"$SOC_CPUS")
for c in $HOST_CPUS; do [[ " $SOC_CPUS " != *" $c "* ]] || fail "cpu $c is both a host and a SoC cpu; give the nodes disjoint --soc-cpus"; done
echo "host cpus: $HOST_CPUS; SoC cpus: $SOC_CPUS"
machine_stalls before
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: bench}\nspec: {vpc: default, cidr: 10.89.0.0/23}\n' > "$work/subnet.yaml"
oc svc apply -f "$work/subnet.yaml" >/dev/null || fail "svc apply of the Subnet failed (see above)"
cat > "$work/svc.yaml" <<EOF
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web-plain}
spec: {clusterIP: $VIP_PLAIN, ports: [{port: 80, targetPort: 80}], selector: {pool: plain}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web-l4}
spec: {clusterIP: $VIP_L4, ports: [{port: 80, targetPort: 80, appProtocol: tcp}], selector: {pool: mesh}}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web-l7}
spec: {clusterIP: $VIP_L7, ports: [{port: 80, targetPort: 80, appProtocol: http}], selector: {pool: mesh}}
EOF
oc svc apply -f "$work/svc.yaml" >/dev/null || fail "svc apply of the Services failed (see above)"
# The routes both L7 deployments carry: Istio's defaults made explicit (a
# route timeout, two retries on connect failure or 502/503/504).
cat > "$work/mesh.yaml" <<EOF
apiVersion: networking.istio.io/v1beta1
kind: VirtualService
metadata: {name: web-l7}
spec:
  hosts: [web-l7]
  http:
  - name: default
    timeout: 10s
    retries: {attempts: 2, perTryTimeout: 5s, retryOn: "connect-failure,gateway-error"}
    route: [{destination: {host: web-l7}}]
EOF
oc mesh apply -f "$work/mesh.yaml" >/dev/null || fail "mesh apply of the VirtualService failed (see above)"

# --- pods -----------------------------------------------------------------

node_of() { echo "${NODES[$(( ($1 / 2) % 2 ))]}"; }  # pods 0,1 on a; 2,3 on b; ...
role_of() { (( $1 % 2 == 0 )) && echo server || echo client; }
declare -A POD_IP
HAVE=0  # pods 0..HAVE-1 exist in both sets
backend_docs=$work/backends.yaml; : > "$backend_docs"

nginx_conf() {  # nginx_conf DIR NAME
  mkdir -p "$1/tmp"
  cat > "$1/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $1/nginx.pid;
error_log $1/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 100000000;
  keepalive_timeout 300s;
  client_body_temp_path $1/tmp/body; proxy_temp_path $1/tmp/proxy; fastcgi_temp_path $1/tmp/fcgi;
  uwsgi_temp_path $1/tmp/uwsgi; scgi_temp_path $1/tmp/scgi;
  server { listen 80 backlog=1024; default_type text/plain; location / { return 200 "$2\n"; } }
}
EOF
}

cni_call() {  # cni_call CMD POD NODE MESH(true|false) SERVICE_ACCOUNT
  printf '{"cniVersion":"1.0.0","name":"bench","type":"offcore-cni","node":"%s","vpc":"default","subnet":"bench","mesh":%s}' "$3" "$4" |
    CNI_COMMAND=$1 CNI_CONTAINERID=$2 CNI_NETNS=/var/run/netns/$2 CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
      CNI_ARGS="K8S_POD_NAME=$2;K8S_POD_NAMESPACE=default;OFFCORE_SERVICE_ACCOUNT=$5" "$CNI"
}

add_pod() {  # add_pod SET(p|m) INDEX
  local set=$1 i=$2 name=ocbm-$1$2 node mesh=false out
  node=$(node_of "$i")
  [ "$set" = m ] && mesh=true
  netns_add "$name"
  ip -n "$name" link set lo up
  cleanup "cni_call DEL $name $node $mesh $(role_of "$i")"
  out=$(cni_call ADD "$name" "$node" "$mesh" "$(role_of "$i")") || fail "CNI ADD for $name on $node failed: $out"
  POD_IP[$name]=$(jq -r '.ips[0].address // empty' <<<"$out" | cut -d/ -f1)
  [ -n "${POD_IP[$name]}" ] || fail "CNI ADD for $name returned no address: $out"
  if [ "$(role_of "$i")" = server ]; then
    local d=$work/$name
    nginx_conf "$d" "$name"
    ( join_cg "offcore/$node/host"; exec ip netns exec "$name" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" ) &
    cleanup "kill $!"
    local pool=plain; [ "$set" = m ] && pool=mesh
    printf -- '---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: %s, labels: {pool: %s}}\nspec: {kind: pod, vpc: default, pod: %s}\n' \
      "$name" "$pool" "$name" >> "$backend_docs"
  fi
}

grow_to() {  # grow_to N: both sets hold N pods
  local n=$1 i name
  step "pods: $HAVE -> $n in each set (plain and mesh)"
  for (( i = HAVE; i < n; i++ )); do add_pod p "$i"; add_pod m "$i"; done
  for (( i = HAVE; i < n; i += 2 )); do
    for name in "ocbm-p$i" "ocbm-m$i"; do
      for _ in $(seq 100); do ip netns exec "$name" curl -sf -o /dev/null http://127.0.0.1/ && break; sleep 0.05; done
      ip netns exec "$name" curl -sf -o /dev/null http://127.0.0.1/ || fail "nginx in $name did not start: $(tail -3 "$work/$name/error.log")"
    done
  done
  HAVE=$n
  oc svc apply -f "$backend_docs" >/dev/null || fail "svc apply of the Backends failed (see above)"
  # Every path answers from every client before anything is measured, and
  # the node proxies know every endpoint.
  local want=$(( n / 2 )) node
  for node in "${NODES[@]}"; do
    for _ in $(seq 200); do
      oc mesh status --node "$node" --json | jq -e --argjson w "$want" \
        '[.services[] | select(.name == "web-l4" or .name == "web-l7") | (.endpoints | length) == $w] | length == 2 and all' >/dev/null && break
      sleep 0.1
    done
  done
  for (( i = 1; i < n; i += 2 )); do
    for target in "ocbm-p$i $VIP_PLAIN" "ocbm-m$i $VIP_L4" "ocbm-m$i $VIP_L7"; do
      read -r name ip <<<"$target"
      ip netns exec "$name" curl -sf -m 3 -o /dev/null "http://$ip/" || fail "$name gets no answer from $ip:80"
    done
  done
}

# --- sidecars ---------------------------------------------------------------

# Istio's sidecars speak mTLS to each other; so do these: a bench CA and one
# P-256 certificate per service account, TLS 1.3 only, as offcore's CA and
# HBONE use (src/mesh/tls).
sidecar_certs() {
  local d=$work/pki sa
  [ -e "$d/ca.pem" ] && return 0
  mkdir -p "$d"; chmod 700 "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 -subj /O=ocbm-ca \
    -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
  for sa in client server; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/O=ocbm/CN=$sa" \
      -keyout "$d/$sa.key" -out "$d/$sa.csr" 2>/dev/null
    printf 'subjectAltName=URI:spiffe://cluster.local/ns/default/sa/%s\n' "$sa" > "$d/$sa.ext"
    openssl x509 -req -in "$d/$sa.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
      -extfile "$d/$sa.ext" -out "$d/$sa.crt" 2>/dev/null
    cat "$d/$sa.crt" "$d/$sa.key" > "$d/$sa.pem"
  done
}

SIDECAR_PIDS=()
sidecars_up() {  # haproxy + nft REDIRECT in every plain pod
  local i name node d servers="" s pki=$work/pki
  sidecar_certs
  for (( s = 0; s < HAVE; s += 2 )); do
    servers+="  server s$s ${POD_IP[ocbm-p$s]}:80 ssl verify required ca-file $pki/ca.pem crt $pki/client.pem"$'\n'
  done
  for (( i = 0; i < HAVE; i++ )); do
    name=ocbm-p$i node=$(node_of "$i") d=$work/sidecar-$name
    mkdir -p "$d"
    # One process and one thread per sidecar (Istio's default concurrency
    # for a sidecar is 2 worker threads; one is what this 2-cpu machine can
    # give 60 of them).
    cat > "$d/haproxy.cfg" <<EOF
global
  nbthread 1
  maxconn 4096
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3
defaults
  mode http
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
  option http-keep-alive
  retries 2
  retry-on conn-failure 502 503 504
  http-reuse safe
frontend outbound
  bind 0.0.0.0:15001
  default_backend web
backend web
  balance roundrobin
$servers
frontend inbound
  bind 0.0.0.0:15006 ssl crt $pki/server.pem ca-file $pki/ca.pem verify required
  default_backend local
backend local
  server app 127.0.0.1:80
EOF
    ip netns exec "$name" nft -f - <<EOF
table ip ocbm_sidecar {
  chain output { type nat hook output priority -100; ip daddr $VIP_PLAIN tcp dport 80 redirect to :15001; }
  chain prerouting { type nat hook prerouting priority -100; iifname "eth0" tcp dport 80 redirect to :15006; }
}
EOF
    ( join_cg "offcore/$node/host"; exec ip netns exec "$name" haproxy -db -f "$d/haproxy.cfg" ) >"$d/log" 2>&1 &
    SIDECAR_PIDS+=("$!")
  done
  cleanup "sidecars_down"
  for (( i = 1; i < HAVE; i += 2 )); do
    name=ocbm-p$i
    for _ in $(seq 100); do ip netns exec "$name" curl -sf -m 2 -o /dev/null "http://$VIP_PLAIN/" && break; sleep 0.05; done
    ip netns exec "$name" curl -sf -m 2 -o /dev/null "http://$VIP_PLAIN/" || fail "no answer through the sidecar of $name"
  done
}
sidecars_down() {
  local p i
  for p in "${SIDECAR_PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${SIDECAR_PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  SIDECAR_PIDS=()
  for (( i = 0; i < HAVE; i++ )); do ip netns exec "ocbm-p$i" nft delete table ip ocbm_sidecar 2>/dev/null || true; done
}
sidecar_pids() {  # haproxy's own pids (the subshells exec'd into it)
  local p; for p in "${SIDECAR_PIDS[@]}"; do echo "$p"; done
}
proxy_pids() {  # every process of the node proxies: keepers and workers
  local node w
  for node in "${NODES[@]}"; do
    w=$(oc mesh status --node "$node" --json | jq -r '.pid // empty')
    [ -n "$w" ] || continue
    echo "$w"; awk '/^PPid:/ { print $2 }' "/proc/$w/status"
  done
}

# --- one paced run ----------------------------------------------------------

# measure MODE: every client of the mode's set, h2load paced to RATE in total.
measure() {
  local mode=$1 set=p vip=$VIP_PLAIN i name node clients=$(( HAVE / 2 )) per pids=() logs=() rc=0
  case $mode in sidecar) ;; direct) ;; l4) set=m vip=$VIP_L4 ;; l7) set=m vip=$VIP_L7 ;; esac
  per=$(awk -v r="$RATE" -v c="$clients" 'BEGIN { printf "%d", (r / c) + 0.5 }')
  local h0 s0 t0 h1 s1 t1 q0 q1 gh0 gs0 gh1 gs1
  rm -f "$work"/h2l-*.log "$work"/h2l-*.out
  h0=$(cpus_idle "$HOST_CPUS") s0=$(cpus_idle "$SOC_CPUS") q0=$(cpus_softirq "$SOC_CPUS")
  gh0=$(cg_cpu $HOST_CGS) gs0=$(cg_cpu $SOC_CGS) t0=$(now)
  for (( i = 1; i < HAVE; i += 2 )); do
    name=ocbm-$set$i node=$(node_of "$i")
    ( join_cg "offcore/$node/host"
      exec ip netns exec "$name" h2load --h1 -c1 --rps "$per" -D "$DURATION" --warm-up-time 1 \
        --log-file "$work/h2l-$i.log" "http://$vip/" ) >"$work/h2l-$i.out" 2>&1 &
    pids+=("$!"); logs+=("$work/h2l-$i.log")
  done
  for p in "${pids[@]}"; do wait "$p" || rc=$?; done
  h1=$(cpus_idle "$HOST_CPUS") s1=$(cpus_idle "$SOC_CPUS") q1=$(cpus_softirq "$SOC_CPUS")
  gh1=$(cg_cpu $HOST_CGS) gs1=$(cg_cpu $SOC_CGS) t1=$(now)
  local ok=0 failed=0 errored=0 o
  for (( i = 1; i < HAVE; i += 2 )); do
    o=$(grep '^requests:' "$work/h2l-$i.out" || true)
    [ -n "$o" ] || { echo "    h2load in ocbm-$set$i gave no summary: $(tail -2 "$work/h2l-$i.out")"; errored=$(( errored + RATE )); continue; }
    read -r _ _ _ _ _ _ _ s _ f _ e _ to _ <<<"$o"
    ok=$(( ok + s )) failed=$(( failed + f )) errored=$(( errored + e + to ))
  done
  # Latency from every request of every client (microseconds, column 3);
  # non-2xx answers count as errors, not latency.
  local lat
  lat=$(cat "${logs[@]}" 2>/dev/null | awk -F'\t' '$2 >= 200 && $2 < 300 { print $3 }' | sort -n |
    awk '{ v[NR] = $1 } END { if (NR == 0) { print "0 0 0 0"; exit }
      printf "%d %.3f %.3f %.3f\n", NR, v[int(NR * 0.5) + (NR * 0.5 > int(NR * 0.5))] / 1000,
        v[int(NR * 0.9) + (NR * 0.9 > int(NR * 0.9))] / 1000, v[int(NR * 0.99) + (NR * 0.99 > int(NR * 0.99))] / 1000 }')
  if [ -n "$KEEP_LOGS" ]; then
    mkdir -p "$KEEP_LOGS/$HAVE-$mode-$RUN" && cp "${logs[@]}" "$KEEP_LOGS/$HAVE-$mode-$RUN/" 2>/dev/null || true
  fi
  local non2xx
  non2xx=$(cat "${logs[@]}" 2>/dev/null | awk -F'\t' '$2 < 200 || $2 >= 300' | wc -l)
  local samples p50 p90 p99
  read -r samples p50 p90 p99 <<<"$lat"
  local line
  line=$(jq -cn --arg mode "$mode" --argjson pods "$HAVE" --argjson clients "$clients" --argjson rate "$RATE" \
    --argjson per "$per" --argjson dur "$DURATION" --argjson ok "$ok" --argjson failed "$failed" \
    --argjson errored "$errored" --argjson non2xx "$non2xx" --argjson n "$samples" --argjson run "$RUN" \
    --argjson p50 "$p50" --argjson p90 "$p90" --argjson p99 "$p99" \
    --argjson host "$(cpus_busy "$h0" "$h1" "$t0" "$t1" "$HOST_CPUS")" \
    --argjson soc "$(cpus_busy "$s0" "$s1" "$t0" "$t1" "$SOC_CPUS")" \
    --argjson cghost "$(echo "$gh1 - $gh0" | bc)" --argjson cgsoc "$(echo "$gs1 - $gs0" | bc)" \
    --argjson socsirq "$(echo "$q1 - $q0" | bc)" --argjson rxs "$RX_STEERING" --argjson rt "$RT_PRIO" \
    --argjson wall "$(echo "$t1 - $t0" | bc)" \
    '{case: "paced", mode: $mode, pods: $pods, clients: $clients, run: $run, rate: $rate, rate_per_client: $per,
      duration_s: $dur, requests: $ok, failed: $failed, errored: $errored, non2xx: $non2xx, latency_samples: $n,
      rps: ($ok / $dur), p50_ms: $p50, p90_ms: $p90, p99_ms: $p99,
      host_cpu_s: $host, soc_cpu_s: $soc, cg_host_cpu_s: $cghost, cg_soc_cpu_s: $cgsoc,
      soc_softirq_s: $socsirq, rx_steering: $rxs, rt_priority: $rt, wall_s: $wall}')
  echo "$line" >&3
  jq -r '"    \(.rps | floor) req/s, p50 \(.p50_ms * 1000 | floor) us, p99 \(.p99_ms * 1000 | floor) us, failed \(.failed + .errored + .non2xx), host \(.host_cpu_s) s, soc \(.soc_cpu_s) s"' <<<"$line"
}

memory() {  # memory MODE PIDS...: the mesh's PSS now
  local mode=$1; shift
  jq -cn --arg mode "$mode" --argjson pods "$HAVE" --argjson run "$RUN" --argjson kib "$(pss_kib "$@")" \
    --argjson procs "$#" '{case: "memory", mode: $mode, pods: $pods, run: $run, pss_kib: $kib, processes: $procs}' >&3
  echo "    $mode memory: $(( $(pss_kib "$@") / 1024 )) MiB PSS in $# processes"
}

# --- the runs ---------------------------------------------------------------

RUN=0
for n in $PODS; do
  grow_to "$n"
  for run in $(seq "$RUNS"); do
    RUN=$run
    # Every mode in every run; the order reverses on even runs so drift
    # falls on both sides of each comparison.
    order=(direct sidecar l4 l7)
    (( run % 2 == 0 )) && order=(l7 l4 sidecar direct)
    for mode in "${order[@]}"; do
      step "$n pods, run $run/$RUNS: $mode"
      if [ "$mode" = sidecar ]; then
        sidecars_up
        measure sidecar
        mapfile -t sp < <(sidecar_pids)
        memory sidecar "${sp[@]}"
        sidecars_down
      else
        measure "$mode"
        if [ "$mode" = l7 ]; then mapfile -t pp < <(proxy_pids); memory offcore "${pp[@]}"; fi
      fi
    done
  done
done
machine_stalls after
step "done"
