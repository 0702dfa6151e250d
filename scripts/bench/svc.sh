#!/usr/bin/env bash
# Service load-balancing driver for `offcore bench svc` (src/bench/svc_suite.cc
# runs it and turns its output into the report). One JSON object per
# measurement goes to stdout (or --out FILE); progress goes to stderr.
#
#   svc.sh [--runs N] [--quick] [--only all|baseline|offcore] [--duration S]
#          [--services "1000 10000"] [--routing "tunnel native"] [--out FILE]
#
# --only defaults to $SVC_BENCH_ONLY, so `SVC_BENCH_ONLY=baseline offcore
# bench svc` reaches it through the suite.
#
# The same client and backend namespaces are reached four ways:
#   direct         the backend's pod IP over offcore's pod network (eth0)
#   direct-router  the backend's eth1 address through the router netns ocbs-kp
#   offcore        the offcore ClusterIP 10.96.88.10 (pod network)
#   nft            VIP 10.97.0.10, DNATed in ocbs-kp by a kube-proxy
#                  nftables-mode ruleset (scripts/bench/svc_nft.py)
# each with wrk keep-alive and wrk with a new connection per request, from a
# client on the backends' node (same-node) and on a second node (cross-node).
# Cross-node, the offcore paths run once per routing mode of the default VPC
# (--routing: tunnel = VXLAN, native = routed on the fabric; the paths of
# the native pass are direct-native and offcore-native).
# CPU is counted where it ran: busy time of the host's and of the SoC's
# cpus (idle-based, lib.sh cpus_busy; softirq work is in no cgroup), and the
# dataplane's packets per cpu (its per-cpu RX counter): how much of its work
# ran on the SoC's cpus.
# Then: time to program 1k/10k services (offcore: apply until every node's
# programmed generation catches up; nft: one `nft -f`), and request latency
# with 10 services installed against the largest count.
#
# --only baseline needs no offcore nodes: direct-router and nft only, with
# wrk and nginx in a cgroup pinned like a node's host domain.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../tests/integration/lib.sh"
source "$HERE/lib.sh"
bench_traps svc.sh

RUNS=3 QUICK=0 ONLY=${SVC_BENCH_ONLY:-all} DURATION=5 SIZES="1000 10000" OUT= ROUTINGS="tunnel native"
while [ $# -gt 0 ]; do
  case $1 in
    --runs) RUNS=$2; shift 2 ;;
    --quick) QUICK=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --services) SIZES=$2; shift 2 ;;
    --routing) ROUTINGS=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    *) fail "unknown argument $1 (see the header of $0)" ;;
  esac
done
[ "$QUICK" = 1 ] && { DURATION=2; SIZES=1000; }
case $ONLY in all|baseline|offcore) ;; *) fail "--only takes all, baseline or offcore" ;; esac
DO_BASE=1 DO_OC=1
[ "$ONLY" = baseline ] && DO_OC=0
[ "$ONLY" = offcore ] && DO_BASE=0
# Results on fd 3; everything else (our progress, tools' chatter) on stderr.
if [ -n "$OUT" ]; then exec 3>>"$OUT"; else exec 3>&1; fi
exec 1>&2

[ "$(id -u)" = 0 ] || fail "run as root (namespaces, nft, cgroups)"
for t in wrk nginx nft jq curl python3; do command -v $t >/dev/null || fail "$t is missing; apt-get install it"; done
leftover=$(ip netns list | awk '{print $1}' | grep '^ocbs' || true)
for n in ocbsa ocbsb; do [ ! -e "/run/offcore/$n" ] || leftover+=" node:$n"; done
[ -z "$leftover" ] || fail "namespaces left from an earlier run: $(echo $leftover); remove them (ip netns delete NAME, offcore dpu down --name ocbsa/ocbsb)"

work=$(mktemp -d /var/tmp/ocbs-svc-XXXX); cleanup "rm -rf $work"
NODE_A=ocbsa NODE_B=ocbsb
VIP_OC=10.96.88.10 VIP_NFT=10.97.0.10
HZ=$(getconf CLK_TCK)

# --- tenant cgroups and CPU accounting -----------------------------------

machine_cpu() { awk -v hz="$HZ" '/^cpu / { printf "%.4f", ($2 + $3 + $4 + $7 + $8 + $9) / hz }' /proc/stat; }
rusage_s() { awk '{ printf "%.3f", $1 + $2 }' "$work/rusage"; }  # user + sys of the last /usr/bin/time

# Client ports: ClusterIP runs take the lower half, every other path the
# upper. offcore's reverse-NAT entries are keyed on the reply's 5-tuple and
# used to outlive their connections, so a later direct connection from a
# port once used for the ClusterIP got its SYN-ACK rewritten to the VIP and
# never completed (fixed in 594e5af). The split keeps such a regression from
# wiping out the direct numbers; check_direct_after_vip (below) tests
# exactly that case and the report flags it.
ports_for() {  # ports_for NS PATH
  local r="33000 65000"; [ "$2" = offcore ] && r="1024 32999"
  ip netns exec "$1" sysctl -qw net.ipv4.ip_local_port_range="$r"
}

if [ "$DO_OC" = 1 ]; then
  HOST_CGS="offcore/$NODE_A/host offcore/$NODE_B/host" SOC_CGS="offcore/$NODE_A/soc offcore/$NODE_B/soc"
  SERVER_CG=offcore/$NODE_A/host
else
  # A node's host domain gets every cpu but the last; so does this cgroup.
  own=ocbs-svc-$ID
  last=$(( $(nproc) - 1 ))
  for h in cpuacct cpuset; do mkdir -p "$CG/$h/$own"; done
  cleanup "rmdir $CG/cpuacct/$own $CG/cpuset/$own"
  cat "$CG/cpuset/cpuset.mems" > "$CG/cpuset/$own/cpuset.mems"
  echo "0-$(( last > 0 ? last - 1 : 0 ))" > "$CG/cpuset/$own/cpuset.cpus"
  HOST_CGS=$own SOC_CGS= SERVER_CG=$own
fi

# --- namespaces -----------------------------------------------------------

netns_up() { netns_add "$1"; ip -n "$1" link set lo up; }
CLIENTS="ocbs-cli"
[ "$DO_OC" = 1 ] && CLIENTS="ocbs-cli ocbs-clib"
for ns in $CLIENTS ocbs-web1 ocbs-web2; do
  netns_up "$ns"
  # Connection-per-request runs open ~10k connections a second.
  ip netns exec "$ns" sysctl -qw net.ipv4.ip_local_port_range="1024 65000" net.ipv4.tcp_tw_reuse=1
done
# nginx closes first, so each such connection leaves a TIME_WAIT socket on
# the backend; once the client's ports wrap (seconds at these rates) new SYNs
# land on them and stall for a SYN retransmit: c1 close runs fell from ~7k
# to ~200 req/s after one c50 close run, and whichever path ran later paid.
for ns in ocbs-web1 ocbs-web2; do ip netns exec "$ns" sysctl -qw net.ipv4.tcp_max_tw_buckets=0; done

declare -A ETH1  # ns -> its eth1 address (the kube-proxy style network)
if [ "$DO_BASE" = 1 ]; then
  step "router ocbs-kp (kube-proxy nftables mode) and eth1 links"
  netns_up ocbs-kp
  ip netns exec ocbs-kp sysctl -qw net.ipv4.ip_forward=1
  declare -A LINK=([ocbs-cli]=1 [ocbs-clib]=2 [ocbs-web1]=3 [ocbs-web2]=4)
  for ns in $CLIENTS ocbs-web1 ocbs-web2; do
    i=${LINK[$ns]}
    ip -n ocbs-kp link add "k$i" type veth peer name eth1 netns "$ns"
    ip -n ocbs-kp addr add "172.31.$i.1/24" dev "k$i"; ip -n ocbs-kp link set "k$i" up
    ip -n "$ns" addr add "172.31.$i.2/24" dev eth1; ip -n "$ns" link set eth1 up
    ip -n "$ns" route add 172.31.0.0/16 via "172.31.$i.1" dev eth1
    ip -n "$ns" route add 10.97.0.0/16 via "172.31.$i.1" dev eth1
    ETH1[$ns]=172.31.$i.2
  done
  # For experiments (the suite sets none): ROUTER_RPS=MASK (hex, as rps_cpus
  # takes it) moves the router's receive work to those cpus, the placement
  # offcore gives its dataplane (the SoC's cpus): with --only baseline the
  # SoC's cpu is the last one, so ROUTER_RPS=2 on this 2-cpu machine.
  if [ -n "${ROUTER_RPS:-}" ]; then
    for ns in $CLIENTS ocbs-web1 ocbs-web2; do
      i=${LINK[$ns]}
      ip netns exec ocbs-kp sh -c "echo $ROUTER_RPS > /sys/class/net/k$i/queues/rx-0/rps_cpus" ||
        fail "could not set rps_cpus of k$i in ocbs-kp"
    done
  fi
fi

# --- offcore: nodes, pods through the CNI plugin, Services ------------------

oc_svc_get() { oc svc get "$1" --json; }
# Seconds from now until both nodes run the store's generation; polls every 20 ms.
wait_programmed() {
  local t0=$1 deadline=$(( SECONDS + ${2:-600} )) p0 doc
  while :; do
    p0=$(now)
    doc=$(oc_svc_get web) || fail "svc get web failed"
    if jq -e --arg a "$NODE_A" --arg b "$NODE_B" \
        '.generation as $g | (.programmed[$a] // 0) >= $g and (.programmed[$b] // 0) >= $g' <<<"$doc" >/dev/null; then
      # The state was read somewhere inside the last poll: its length is the resolution.
      PROG_S=$(echo "$(now) - $t0" | bc) PROG_RES=$(echo "$(now) - $p0" | bc)
      PROG_GEN=$(jq .generation <<<"$doc")
      return 0
    fi
    [ $SECONDS -lt $deadline ] || fail "nodes did not program generation $(jq .generation <<<"$doc") in ${2:-600} s (programmed: $(jq -c .programmed <<<"$doc"); see /run/offcore/$NODE_A/agent.log)"
    sleep 0.02
  done
}

svc_doc() {  # svc_doc NAME CLUSTERIP SELECTOR_KEY SELECTOR_VALUE
  printf -- '---\napiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: %s}\nspec: {type: ClusterIP, vpc: default, clusterIP: %s, ports: [{port: 80, targetPort: 80, protocol: TCP}], selector: {%s: %s}}\n' "$@"
}
# Services s-FROM..s-(TO-1), all selecting both backends; 10.96.100.1 upwards.
bulk_yaml() {
  awk -v from="$1" -v to="$2" 'BEGIN { for (i = from; i < to; i++)
    printf "---\napiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: s-%05d}\nspec: {type: ClusterIP, vpc: default, clusterIP: 10.96.%d.%d, ports: [{port: 80, targetPort: 80, protocol: TCP}], selector: {pool: bench}}\n", i, 100 + int(i / 250), i % 250 + 1 }'
}

declare -A POD_IP
if [ "$DO_OC" = 1 ]; then
  export OFFCORE_CONFIG=$work/config.json
  echo "{\"cluster_dir\": \"$work/cluster\"}" > "$OFFCORE_CONFIG"
  CNI=$(dirname "$OFFCORE")/offcore-cni
  [ -x "$CNI" ] || fail "the CNI plugin $CNI is missing; build it (ninja offcore-cni)"
  oc svc --help >/dev/null 2>&1 || fail "$OFFCORE has no \`svc\` command yet; use --only baseline"
  step "nodes $NODE_A and $NODE_B"
  for n in $NODE_A $NODE_B; do
    cleanup "ip netns delete ocbs-h${n#ocbs}"
    node_up "$n" --host-netns "ocbs-h${n#ocbs}" >/dev/null
  done
  printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: bench}\nspec: {vpc: default, cidr: 10.88.0.0/24}\n' > "$work/subnet.yaml"
  oc svc apply -f "$work/subnet.yaml" >/dev/null || fail "svc apply of the Subnet failed (see above)"
  step "pods through $CNI"
  for ns in $CLIENTS ocbs-web1 ocbs-web2; do
    node=$NODE_A; [ "$ns" = ocbs-clib ] && node=$NODE_B
    conf="{\"cniVersion\":\"1.0.0\",\"name\":\"bench\",\"type\":\"offcore-cni\",\"node\":\"$node\",\"vpc\":\"default\",\"subnet\":\"bench\"}"
    cni_env="CNI_CONTAINERID=$ns-$ID CNI_NETNS=/var/run/netns/$ns CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin CNI_ARGS=K8S_POD_NAME=$ns"
    cleanup "env CNI_COMMAND=DEL $cni_env $CNI <<< '$conf'"
    res=$(env CNI_COMMAND=ADD $cni_env "$CNI" <<<"$conf") || fail "CNI ADD for $ns on $node failed: $res"
    ip=$(jq -r '.ips[0].address // empty' <<<"$res"); [ -n "$ip" ] || fail "CNI ADD for $ns returned no address: $res"
    POD_IP[$ns]=${ip%/*}
  done
  { printf -- '---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: web1, labels: {app: web, pool: bench}}\nspec: {kind: pod, vpc: default, pod: ocbs-web1}\n'
    printf -- '---\napiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: web2, labels: {pool: bench}}\nspec: {kind: pod, vpc: default, pod: ocbs-web2}\n'
    svc_doc web "$VIP_OC" app web; } > "$work/web.yaml"
  oc svc apply -f "$work/web.yaml" >/dev/null || fail "svc apply of the web Service failed (see above)"
  HOST_CPUS= SOC_CPUS=
  for n in $NODE_A $NODE_B; do
    HOST_CPUS+=" $(oc dpu status --name "$n" --json | jq -r .domains.host.cpus)"
    SOC_CPUS+=" $(oc dpu status --name "$n" --json | jq -r .domains.soc.cpus)"
  done
  HOST_CPUS=$(expand_cpus <<<"$HOST_CPUS") SOC_CPUS=$(expand_cpus <<<"$SOC_CPUS")
else
  HOST_CPUS=$(seq -s ' ' 0 $(( last > 0 ? last - 1 : 0 ))) SOC_CPUS=$last
fi
echo "host cpus: $HOST_CPUS; SoC cpus: $SOC_CPUS"
# dp_rx: packets the dataplanes of both nodes handled on the SoC's cpus and
# on the others, "SOC OTHER" (their per-cpu RX counters).
dp_rx() {
  [ "$DO_OC" = 1 ] || { echo "0 0"; return; }
  local n
  for n in $NODE_A $NODE_B; do
    oc net status --node "$n" --json | jq -r '.dataplane_rx_by_cpu // [] | to_entries[] | "\(.key) \(.value)"'
  done | awk -v soc=" $SOC_CPUS " '{ if (index(soc, " " $1 " ")) s += $2; else o += $2 } END { printf "%d %d\n", s, o }'
}
# set_routing MODE: the default VPC (the bench's subnet) tunnelled or natively routed.
ROUTING=tunnel
set_routing() {
  [ "$DO_OC" = 1 ] && [ "$1" != "$ROUTING" ] || return 0
  printf 'apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: default}\nspec: {routing: %s}\n' "$1" > "$work/vpc.yaml"
  oc svc apply -f "$work/vpc.yaml" >/dev/null || fail "svc apply of routing $1 failed"
  wait_programmed "$(now)" 60
  ROUTING=$1
}

# --- nginx backends -------------------------------------------------------

for b in web1 web2; do
  d=$work/$b; mkdir -p "$d/tmp"
  cat > "$d/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $d/nginx.pid;
error_log $d/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 100000000;
  client_body_temp_path $d/tmp/body; proxy_temp_path $d/tmp/proxy; fastcgi_temp_path $d/tmp/fcgi;
  uwsgi_temp_path $d/tmp/uwsgi; scgi_temp_path $d/tmp/scgi;
  server { listen 80 backlog=4096; default_type text/plain; location / { return 200 "$b\n"; } }
}
EOF
  ( join_cg "$SERVER_CG"; exec ip netns exec "ocbs-$b" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" ) &
  cleanup "kill $!; wait $!"
done
for b in web1 web2; do
  for _ in $(seq 100); do ip netns exec "ocbs-$b" curl -sf -o /dev/null http://127.0.0.1/ && break; sleep 0.05; done
  ip netns exec "ocbs-$b" curl -sf -o /dev/null http://127.0.0.1/ || fail "nginx in ocbs-$b did not start: $(tail -3 "$work/$b/error.log")"
done

# --- the 10-service state, both implementations ---------------------------

nft_kp() { ip netns exec ocbs-kp nft "$@"; }
nft_file() {  # nft_file N [FROM]: the kube-proxy style ruleset, services FROM..N-1
  python3 "$HERE/svc_nft.py" "$1" --from "${2:-0}" --first-backends "${ETH1[ocbs-web1]}:80" \
    --backends "${ETH1[ocbs-web1]}:80,${ETH1[ocbs-web2]}:80" --vip-base "$VIP_NFT"
}
nft_reset() { nft_kp delete table ip kube-proxy 2>/dev/null || true; nft_file 1 > "$work/nft-1.nft"; nft_kp -f "$work/nft-1.nft"; }
OC_BULK=1  # offcore holds web and s-00001..s-(OC_BULK-1)
oc_reset() {  # back to web alone
  if [ "$OC_BULK" -gt 1 ]; then
    bulk_yaml 1 "$OC_BULK" > "$work/del.yaml"
    oc svc delete -f "$work/del.yaml" >/dev/null || fail "svc delete of the bulk services failed"
    OC_BULK=1
  fi
  wait_programmed "$(now)" 120
}
oc_add_bulk() {  # oc_add_bulk N [TIMEOUT_S]: web plus services 1..N-1
  bulk_yaml "$OC_BULK" "$1" > "$work/bulk.yaml"
  local t0 s0; t0=$(now) s0=$(cg_cpu $SOC_CGS)
  /usr/bin/time -f '%U %S' -o "$work/rusage" "$OFFCORE" svc apply -f "$work/bulk.yaml" >/dev/null ||
    fail "svc apply of $1 services failed"
  wait_programmed "$t0" "${2:-600}"
  PROG_SOC=$(echo "$(cg_cpu $SOC_CGS) - $s0" | bc)
  OC_BULK=$1
}

if [ "$DO_BASE" = 1 ]; then
  step "nft: 10 services in ocbs-kp"
  nft_kp add table ip kube-proxy; nft_kp delete table ip kube-proxy
  nft_file 10 > "$work/nft-10.nft"; nft_kp -f "$work/nft-10.nft"
  cleanup "ip netns exec ocbs-kp nft delete table ip kube-proxy"
  # Conntrack in ocbs-kp would fill with TIME_WAIT entries of the
  # connection-per-request runs (262144 max, 120 s each); shorten them.
  ip netns exec ocbs-kp sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_time_wait=10
fi
if [ "$DO_OC" = 1 ]; then
  step "offcore: 10 services"
  oc_add_bulk 10 60
fi

# --- reachability: every path answers before anything is measured ----------

declare -A TARGET  # "client path" -> ip
for c in $CLIENTS; do
  if [ "$DO_OC" = 1 ]; then TARGET["$c direct"]=${POD_IP[ocbs-web1]}; TARGET["$c offcore"]=$VIP_OC; fi
  if [ "$DO_BASE" = 1 ]; then TARGET["$c direct-router"]=${ETH1[ocbs-web1]}; TARGET["$c nft"]=$VIP_NFT; fi
done
for key in "${!TARGET[@]}"; do
  read -r c p <<<"$key"
  ports_for "$c" "$p"
  ip netns exec "$c" curl -sf -m 3 -o /dev/null "http://${TARGET[$key]}/" ||
    fail "$p path from $c to ${TARGET[$key]}:80 does not answer$([ "$p" = offcore ] && echo " (offcore ClusterIP not programmed or not forwarding; try --only baseline)")"
done

# --- wrk ------------------------------------------------------------------

cat > "$work/report.lua" <<'EOF'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"duration_us":%d,"errors":%d,"p50_us":%d,"p90_us":%d,"p99_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean))
end
EOF

# wrk_run CLIENT_NS CLIENT_CG IP MODE CONNS EXTRA_JSON: one wrk run, one JSON line.
wrk_run() {
  local ns=$1 cg=$2 ip=$3 mode=$4 conns=$5 extra=$6 hdr=() h0 s0 m0 t0 h1 s1 m1 t1 out
  [ "$mode" = close ] && hdr=(-H "Connection: close")
  local r0 r1 hi0 hi1 si0 si1 q0 q1 qh0 qh1
  r0=$(dp_rx)
  hi0=$(cpus_idle "$HOST_CPUS") si0=$(cpus_idle "$SOC_CPUS") q0=$(cpus_softirq "$SOC_CPUS") qh0=$(cpus_softirq "$HOST_CPUS")
  h0=$(cg_cpu $HOST_CGS) s0=$(cg_cpu $SOC_CGS) m0=$(machine_cpu) t0=$(now)
  local line w rc=0
  # A dead path would hold wrk in connect() for the kernel's SYN retries
  # (two minutes); one short probe first.
  if ! ip netns exec "$ns" curl -sf -m 2 -o /dev/null "http://$ip/"; then
    rc=-1 out="no answer from $ip:80 within 2 s (curl probe before the run)"
  else
    out=$( join_cg "$cg"; exec ip netns exec "$ns" wrk -t1 -c"$conns" -d"${DURATION}s" --latency -s "$work/report.lua" \
         "${hdr[@]}" "http://$ip/" 2>&1 ) || rc=$?
  fi
  h1=$(cg_cpu $HOST_CGS) s1=$(cg_cpu $SOC_CGS) m1=$(machine_cpu) t1=$(now)
  hi1=$(cpus_idle "$HOST_CPUS") si1=$(cpus_idle "$SOC_CPUS") q1=$(cpus_softirq "$SOC_CPUS") qh1=$(cpus_softirq "$HOST_CPUS")
  r1=$(dp_rx)
  w=$(grep '^WRKJSON ' <<<"$out" | cut -d' ' -f2-) || true
  if [ "$rc" != 0 ] || [ -z "$w" ]; then
    # A path that stops answering is a result, not a reason to lose the
    # others: record it and go on.
    line=$(jq -cn --argjson x "$extra" --arg mode "$mode" --arg target "$ip:80" --argjson conns "$conns" \
      --arg err "$([ "$rc" = -1 ] || echo "wrk exit $rc: ")$(head -c 300 <<<"$out" | tr '\n' ' ')" '$x + {mode: $mode, target: $target, conns: $conns, error: $err}')
    echo "$line" >&3
    echo "    FAILED: $(jq -r .error <<<"$line")"
    return 0
  fi
  line=$(jq -cn --argjson w "$w" --argjson x "$extra" --arg mode "$mode" --arg target "$ip:80" --argjson conns "$conns" \
    --argjson host "$(echo "$h1 - $h0" | bc)" --argjson soc "$(echo "$s1 - $s0" | bc)" \
    --argjson machine "$(echo "$m1 - $m0" | bc)" --argjson wall "$(echo "$t1 - $t0" | bc)" \
    --argjson hbusy "$(cpus_busy "$hi0" "$hi1" "$t0" "$t1" "$HOST_CPUS")" \
    --argjson sbusy "$(cpus_busy "$si0" "$si1" "$t0" "$t1" "$SOC_CPUS")" \
    --argjson ssirq "$(echo "$q1 - $q0" | bc)" --argjson hsirq "$(echo "$qh1 - $qh0" | bc)" \
    --argjson dprx "$(read -r a b <<<"$r0"; read -r c d <<<"$r1"; echo "[$(( c - a )), $(( d - b ))]")" \
    '$x + {mode: $mode, target: $target, conns: $conns, requests: $w.requests, errors: $w.errors,
      host_busy_s: $hbusy, soc_busy_s: $sbusy, soc_softirq_s: $ssirq, host_softirq_s: $hsirq,
      dp_rx_soc: $dprx[0], dp_rx_other: $dprx[1],
      rps: ($w.requests / ($w.duration_us / 1e6)), p50_ms: ($w.p50_us / 1000), p90_ms: ($w.p90_us / 1000),
      p99_ms: ($w.p99_us / 1000), mean_ms: ($w.mean_us / 1000), host_cpu_s: $host, soc_cpu_s: $soc,
      machine_cpu_s: $machine, wall_s: $wall}')
  echo "$line" >&3
  jq -r '"    \(.rps | floor) req/s, p50 \(.p50_ms) ms, p99 \(.p99_ms) ms, errors \(.errors), host cpus busy \(.host_busy_s) s, SoC cpus busy \(.soc_busy_s) s, dataplane packets on the SoC \(.dp_rx_soc) of \(.dp_rx_soc + .dp_rx_other)"' <<<"$line"
}

check_direct_after_vip() {  # after ClusterIP runs: direct from the ClusterIP's ports
  local c fails i
  for c in $CLIENTS; do
    ports_for "$c" offcore
    fails=0
    for i in 1 2 3 4 5; do ip netns exec "$c" curl -sf -m 2 -o /dev/null "http://${POD_IP[ocbs-web1]}/" || fails=$(( fails + 1 )); done
    jq -cn --arg c "$(case_of "$c")" --argjson f "$fails" --arg t "${POD_IP[ocbs-web1]}:80" \
      '{case: "check", check: "direct-after-clusterip", client_case: $c, target: $t, probes: 5, failed: $f,
        ok: ($f == 0)}' >&3
    echo "    $(case_of "$c"): $fails of 5 direct connections from ports the ClusterIP runs used failed"
  done
}
client_cg() { if [ "$DO_OC" = 1 ]; then [ "$1" = ocbs-clib ] && echo "offcore/$NODE_B/host" || echo "offcore/$NODE_A/host"; else echo "$SERVER_CG"; fi; }
case_of() { [ "$1" = ocbs-clib ] && echo cross-node || echo same-node; }
PATHS=()
[ "$DO_OC" = 1 ] && PATHS+=(direct offcore)
[ "$DO_BASE" = 1 ] && PATHS+=(direct-router nft)

step "warm-up"
for c in $CLIENTS; do for p in "${PATHS[@]}"; do
  ports_for "$c" "$p"
  ip netns exec "$c" wrk -t1 -c10 -d1s "http://${TARGET["$c $p"]}/" >/dev/null || echo "    warm-up of $p from $c failed"
done; done

# Every path is measured in every run, and the order reverses on even runs:
# drift on this shared machine, and whatever one path's run leaves behind
# for the next (sockets in TIME_WAIT, cold caches), falls on each side of
# every pair alike.
# The first routing mode runs every path from every client; the others only
# the offcore paths, cross-node (same-node traffic never leaves the node).
read -r -a ROUTING_LIST <<<"$ROUTINGS"
[[ " $ROUTINGS " == *" tunnel "* ]] || fail "--routing must include tunnel (its pass runs the baselines and same-node paths)"
[ "$DO_OC" = 1 ] || ROUTING_LIST=(tunnel)
for run in $(seq "$RUNS"); do
  routings=("${ROUTING_LIST[@]}")
  (( run % 2 == 0 )) && routings=($(printf '%s\n' "${ROUTING_LIST[@]}" | tac))
  for routing in "${routings[@]}"; do
    set_routing "$routing"
    # Paths are named by routing: direct/offcore are the tunnel's,
    # direct-native/offcore-native the native pass's (cross-node only; the
    # baselines and same-node paths run in the tunnel pass).
    order=("${PATHS[@]}") clients=$CLIENTS suffix=
    if [ "$routing" != tunnel ]; then order=(direct offcore) clients=ocbs-clib suffix=-$routing; fi
    if (( run % 2 == 0 )); then
      rev=(); for (( k = ${#order[@]} - 1; k >= 0; k-- )); do rev+=("${order[$k]}"); done; order=("${rev[@]}")
    fi
    for c in $clients; do
      for mode in keepalive close; do
        for p in "${order[@]}"; do
          step "run $run/$RUNS: $(case_of "$c") $p$suffix $mode ($routing routing)"
          ports_for "$c" "$p"
          wrk_run "$c" "$(client_cg "$c")" "${TARGET["$c $p"]}" "$mode" 50 \
            "$(jq -cn --arg c "$(case_of "$c")" --arg p "$p$suffix" --arg rt "$routing" --argjson r "$run" \
              '{case: $c, path: $p, routing: $rt, run: $r}')"
        done
      done
    done
  done
done
set_routing "${ROUTING_LIST[0]}"
if [ "$DO_OC" = 1 ]; then
  step "check: direct connections from ports that carried ClusterIP traffic"
  check_direct_after_vip
fi

# --- latency against the number of services ---------------------------------

IMPLS=()
[ "$DO_OC" = 1 ] && IMPLS+=(offcore)
[ "$DO_BASE" = 1 ] && IMPLS+=(nft)
latency_at() {  # latency_at SERVICES: one connection, both modes, each impl
  local n=$1 impl mode run ip
  for run in $(seq "$RUNS"); do
    for mode in close keepalive; do
      for impl in "${IMPLS[@]}"; do
        ip=$VIP_NFT; [ "$impl" = offcore ] && ip=$VIP_OC
        step "latency with $n services: $impl $mode, run $run/$RUNS"
        ports_for ocbs-cli "$impl"
        wrk_run ocbs-cli "$(client_cg ocbs-cli)" "$ip" "$mode" 1 \
          "$(jq -cn --arg i "$impl" --argjson n "$n" --argjson r "$run" '{case: "latency_vs_services", impl: $i, path: $i, services: $n, run: $r}')"
      done
    done
  done
}
latency_at 10

# --- programming time -------------------------------------------------------

for n in $SIZES; do
  if [ "$DO_BASE" = 1 ]; then
    step "nft: program $n services (one nft -f)"
    nft_reset
    nft_file "$n" 1 > "$work/nft-bulk.nft"
    t0=$(now); /usr/bin/time -f '%U %S' -o "$work/rusage" ip netns exec ocbs-kp nft -f "$work/nft-bulk.nft"; t1=$(now)
    got=$(nft_kp -j list map ip kube-proxy service-ips | jq '[.nftables[] | .map? | select(.) | .elem | length] | add')
    [ "$got" -eq "$n" ] || fail "nft holds $got services, expected $n"
    jq -cn --argjson n "$n" --argjson s "$(echo "$t1 - $t0" | bc)" --argjson cli "$(rusage_s)" \
      '{case: "program", impl: "nft", services: $n, seconds: $s, resolution_s: 0, cli_cpu_s: $cli, soc_cpu_s: 0}' >&3
    echo "    $(echo "$t1 - $t0" | bc) s"
  fi
  if [ "$DO_OC" = 1 ]; then
    step "offcore: program $n services (apply, until both nodes run it)"
    oc_reset
    oc_add_bulk "$n"
    jq -cn --argjson n "$n" --argjson s "$PROG_S" --argjson r "$PROG_RES" --argjson g "$PROG_GEN" \
      --argjson cli "$(rusage_s)" --argjson soc "$PROG_SOC" \
      '{case: "program", impl: "offcore", services: $n, seconds: $s, resolution_s: $r, generation: $g,
        cli_cpu_s: $cli, soc_cpu_s: $soc}' >&3
    echo "    $PROG_S s (resolution $PROG_RES s)"
  fi
done

largest=${SIZES##* }
latency_at "$largest"
step "done"
