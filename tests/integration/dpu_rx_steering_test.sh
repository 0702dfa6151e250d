#!/usr/bin/env bash
# Receive steering (src/dpu/rx_steering.h): a packet a pod sends is received
# on the SoC's cpus, as on a card, not in the sending host cpu's softirq.
#  1. The settings after `dpu up` and a CNI ADD: representor, uplink and
#     the SoC's end of the host-VF -> threaded NAPI pinned to the SoC's cpus
#     (RPS off; their senders without TSO); the pod's VF -> threaded NAPI
#     pinned to the host's cpus; the host's end of the host-VF -> RPS to the
#     host's cpus.
#  2. A UDP flood from a pod (pinned to the host's cpus) to an address of its
#     subnet that nobody has, which the BPF dataplane drops: the softirq time
#     rises on the SoC's cpus (`dpu status`,
#     cpus_softirq_seconds, read from /proc/stat), and falls back when the
#     representor's NAPI thread is turned off.
#  3. dpu down leaves no NAPI thread of the SoC's devices.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
[ "$(nproc)" -ge 2 ] || fail "needs 2 cpus (one host, one SoC)"
N=rx$ID
P=rxp$ID
netns_add "h$N"
node_up "$N" --host-netns "h$N"

printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: rx}\nspec: {vpc: default, cidr: 10.64.7.0/24}\n' \
  > "$SVC_T/net.yaml"
oc svc apply -f "$SVC_T/net.yaml" >/dev/null
pod_add "$N" "$P" rx default

mask() {  # mask NETNS IF: rps_cpus of rx-0 (hex), leading zeros and commas dropped
  ip netns exec "$1" cat "/sys/class/net/$2/queues/rx-0/rps_cpus" | tr -d ',' | sed 's/^0*//'
}
cpumask() {  # cpumask LIST: "1" / "0-1" -> hex
  python3 -c 'import sys
m = 0
for part in sys.argv[1].split(","):
    a, _, b = part.partition("-")
    for c in range(int(a), int(b or a) + 1): m |= 1 << c
print("%x" % m)' "$1"
}

step "masks after dpu up and CNI ADD"
soc_cpus=$(status_field "$N" .domains.soc.cpus)
host_cpus=$(status_field "$N" .domains.host.cpus)
soc_mask=$(cpumask "$soc_cpus"); host_mask=$(cpumask "$host_cpus")
soc=oc-$N-soc
rep=$(oc dpu vf list --name "$N" --json | jq -r --arg p "$P" '.[] | select(.netns | endswith($p)) | .representor')
[ -n "$rep" ] || fail "no VF for $P in $(oc dpu vf list --name "$N" --json)"
uplink=$(status_field "$N" .network.uplink.soc_if)
hv_soc=$(status_field "$N" .network.host_vf.soc_if)
hv_host=$(status_field "$N" .network.host_vf.host_if)
echo "SoC cpus $soc_cpus (mask $soc_mask), host cpus $host_cpus (mask $host_mask)"
# The SoC's ends by threaded NAPI (rx_steering_mode napi, the default):
# threaded, RPS off, every NAPI thread of the device pinned to the SoC's cpus.
napi_cpus() {  # napi_cpus DEV: the cpu lists of its NAPI threads, one per line
  local p
  for p in /proc/[0-9]*; do
    if [[ "$(cat "$p/comm" 2>/dev/null)" == "napi/$1-"* ]]; then taskset -pc "${p#/proc/}" | sed 's/.*: //'; fi
  done
}
for dev in "$rep" "$uplink" "$hv_soc"; do
  [ "$(ip netns exec "$soc" cat "/sys/class/net/$dev/threaded")" = 1 ] || fail "$dev in the SoC is not threaded NAPI"
  [ "$(mask "$soc" "$dev")" = "" ] || fail "$dev in the SoC kept RPS ($(mask "$soc" "$dev")) beside its NAPI thread"
  threads=$(napi_cpus "$dev")
  [ -n "$threads" ] || fail "$dev has no NAPI thread"
  bad=$(grep -vx "$soc_cpus" <<<"$threads" || true)
  [ -z "$bad" ] || fail "NAPI threads of $dev may run on $bad, want $soc_cpus"
done
# Their senders do no TSO (else what they send bypasses the peer's NAPI).
ip netns exec "$P" ethtool -k eth0 | grep -q "^tcp-segmentation-offload: off" || fail "the pod's eth0 still does TSO"
# The pod's end: its own NAPI thread on the host's cpus (RPS off), and the
# representor, its sender, without TSO. Every pod's VF is eth0: the threads
# of all of them (this test's pod is the only one up) run on the host's cpus.
ip netns exec "$soc" ethtool -k "$rep" | grep -q "^tcp-segmentation-offload: off" || fail "$rep still does TSO"
[ "$(ip netns exec "$P" cat /sys/class/net/eth0/threaded)" = 1 ] || fail "the pod's eth0 is not threaded NAPI"
[ "$(mask "$P" eth0)" = "" ] || fail "the pod's eth0 kept RPS ($(mask "$P" eth0)) beside its NAPI thread"
threads=$(napi_cpus eth0)
[ -n "$threads" ] || fail "the pod's eth0 has no NAPI thread"
bad=$(grep -vx "$host_cpus" <<<"$threads" || true)
[ -z "$bad" ] || fail "NAPI threads of the pods' eth0 may run on $bad, want $host_cpus"
[ "$(mask "h$N" "$hv_host")" = "$host_mask" ] || fail "the host's $hv_host steers to $(mask "h$N" "$hv_host")"

step "a flood the dataplane drops is received on the SoC's cpus"
# Where the dataplane ran: its per-cpu RX counter (net status
# dataplane_rx_by_cpu), split into the SoC's cpus and the others; and the
# busy time of the SoC's cpus (a NAPI thread's work is system time, not
# softirq, so softirq alone would miss it).
rx_split() {
  oc net status --node "$N" --json | jq -r '.dataplane_rx_by_cpu | to_entries[] | "\(.key) \(.value)"' |
    awk -v soc=" $(tr ',' ' ' <<<"$soc_cpus") " '{ if (index(soc, " " $1 " ")) s += $2; else o += $2 } END { printf "%d %d", s, o }'
}
busy() { status_field "$N" ".domains.$1.cpus_busy_seconds"; }
flood() {
  oc dpu exec --name "$N" --domain host -- ip netns exec "$P" timeout 3 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = b"x" * 64
while True:
    s.sendto(b, ("10.64.7.250", 9))' || [ $? -eq 124 ]
}
measure() {  # measure -> "SOC_SHARE SOC_BUSY_S PACKETS" during 3 s of flood
  local r0 r1 b0 b1
  r0=$(rx_split); b0=$(busy soc)
  flood
  r1=$(rx_split); b1=$(busy soc)
  read -r s0 o0 <<<"$r0"; read -r s1 o1 <<<"$r1"
  awk -v s=$(( s1 - s0 )) -v o=$(( o1 - o0 )) -v a="$b0" -v b="$b1" \
    'BEGIN { printf "%.3f %.2f %d", (s + o) ? s / (s + o) : 0, b - a, s + o }'
}
read -r share dbusy n <<<"$(measure)"
echo "3 s of flood, steered: $n packets through the dataplane, $(awk -v x="$share" 'BEGIN{printf "%.1f", 100*x}')% on the SoC's cpus; SoC cpus busy +$dbusy s"
# The same flood with the representor's NAPI thread gone: NAPI then runs in
# the softirq of the sender's cpu, the kernel's default.
ip netns exec "$soc" sh -c "echo 0 > /sys/class/net/$rep/threaded"
read -r ushare ubusy un <<<"$(measure)"
echo "the same, unsteered: $un packets, $(awk -v x="$ushare" 'BEGIN{printf "%.1f", 100*x}')% on the SoC's cpus; SoC cpus busy +$ubusy s"
assert_cmp "$n" ">" 10000 "packets through the dataplane during the flood"
assert_cmp "$share" ">=" 0.9 "the dataplane's share on the SoC's cpus, steered"
assert_cmp "$dbusy" ">=" 0.2 "busy time of the SoC's cpus, steered"
assert_cmp "$ushare" "<" 0.5 "the dataplane's share on the SoC's cpus, unsteered"

step "dpu down takes the devices, and their steering and NAPI threads with them"
oc dpu down --name "$N" >/dev/null
# The SoC's namespace (and its devices) is torn down by the kernel's
# cleanup worker, a moment after the last reference goes.
for _ in $(seq 50); do
  left=$(for dev in "$rep" "$uplink" "$hv_soc"; do napi_cpus "$dev"; done)
  [ -z "$left" ] && break
  sleep 0.1
done
[ -z "$left" ] || fail "NAPI threads of $N's SoC devices outlived dpu down"
