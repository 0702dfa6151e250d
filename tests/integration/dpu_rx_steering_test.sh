#!/usr/bin/env bash
# Receive steering (src/dpu/rx_steering.h): a packet a pod sends is received
# on the SoC's cpus, as on a card, not in the sending host cpu's softirq.
#  1. The masks after `dpu up` and a CNI ADD: representor, uplink and the
#     SoC's end of the host-VF -> the SoC's cpus; the pod's VF and the host's
#     end of the host-VF -> the host's cpus.
#  2. A UDP flood from a pod (pinned to the host's cpus) to an address of its
#     subnet that nobody has, which the BPF dataplane drops: the softirq time
#     rises on the SoC's cpus (`dpu status`,
#     cpus_softirq_seconds, read from /proc/stat), and falls back when the
#     representor's steering is cleared. Measured: SoC +0.8-1.4 s,
#     host +0.6-1.2 s with steering; SoC +0, host +0.3 s without.
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
for dev in "$rep" "$uplink" "$hv_soc"; do
  [ "$(mask "$soc" "$dev")" = "$soc_mask" ] || fail "$dev in the SoC steers to $(mask "$soc" "$dev"), want $soc_mask"
done
[ "$(mask "$P" eth0)" = "$host_mask" ] || fail "the pod's eth0 steers to $(mask "$P" eth0), want $host_mask"
[ "$(mask "h$N" "$hv_host")" = "$host_mask" ] || fail "the host's $hv_host steers to $(mask "h$N" "$hv_host")"

step "a flood the dataplane drops is received on the SoC's cpus"
softirq() { status_field "$N" ".domains.$1.cpus_softirq_seconds"; }
flood() {
  oc dpu exec --name "$N" --domain host -- ip netns exec "$P" timeout 3 python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
b = b"x" * 64
while True:
    s.sendto(b, ("10.64.7.250", 9))' || [ $? -eq 124 ]
}
measure() {  # measure -> "SOC HOST": softirq seconds during 3 s of flood
  local s0 h0 s1 h1
  s0=$(softirq soc); h0=$(softirq host)
  flood
  s1=$(softirq soc); h1=$(softirq host)
  awk -v a="$s0" -v b="$s1" -v c="$h0" -v d="$h1" 'BEGIN{printf "%.2f %.2f", b-a, d-c}'
}
read -r dsoc dhost <<<"$(measure)"
echo "softirq during 3 s of flood, steered: SoC cpus +$dsoc s, host cpus +$dhost s"
# The same flood with the representor's steering cleared: the kernel's
# default, the sender's cpu. (The host keeps a share in both: its cpu sends
# the IPIs that hand packets over, and takes the SoC's ICMP answers.)
ip netns exec "$soc" sh -c "echo 0 > /sys/class/net/$rep/queues/rx-0/rps_cpus"
read -r usoc uhost <<<"$(measure)"
echo "the same, unsteered: SoC cpus +$usoc s, host cpus +$uhost s"
assert_cmp "$dsoc" ">=" 0.2 "softirq on the SoC's cpus, steered"
assert_cmp "$usoc" "<" "$(awk -v s="$dsoc" 'BEGIN{print s / 4}')" "SoC softirq unsteered under a quarter of steered"
