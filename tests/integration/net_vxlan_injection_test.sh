#!/usr/bin/env bash
# VXLAN is anyone's to send: a fabric host that is no node, the host domain,
# and a node that forges another node's pod address must not get a frame
# into a VPC. Each sends a crafted VXLAN packet (UDP 4789, the VPC's VNI, an
# inner UDP datagram to a pod); the pod must receive nothing and the node
# must count the drops. Real node-to-node traffic keeps flowing.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
A=xa$ID
B=xb$ID
F=xf$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$A"
node_up "$B" --host-netns "xh$ID"
cleanup "\"$OFFCORE\" fabric host del $F"
oc fabric host add "$F"

cat > "$SVC_T/net.yaml" <<EOF
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vx}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: sx}
spec: {vpc: vx, cidr: 10.63.1.0/24}
EOF
oc svc apply -f "$SVC_T/net.yaml"
VNI=$(oc svc list --kind VPC --json | jq -r '.[] | select(.name=="vx") | .spec.vni // .vni')
[[ "$VNI" =~ ^[0-9]+$ ]] || fail "no VNI for vx: $(oc svc list --kind VPC --json)"
P1=xp1-$ID P2=xp2-$ID P3=xp3-$ID
pod_add "$A" "$P1" sx vx; ip_p1=$POD_IP
pod_add "$A" "$P3" sx vx; ip_p3=$POD_IP
pod_add "$B" "$P2" sx vx; ip_p2=$POD_IP
ip_a=$(jq -r .uplink_ip "/run/offcore/$A/node.json"); ip_a=${ip_a%/*}
soc_a=$(jq -r .hostvf_soc_ip "/run/offcore/$A/node.json"); soc_a=${soc_a%/*}

# A listener in P1 that records every datagram on port 7777 with its source.
got=$SVC_T/got
: > "$got"
ip netns exec "$P1" python3 -u -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", 7777))
while True:
    data, peer = u.recvfrom(2048)
    print(peer[0], data.decode(errors="replace"), flush=True)' >> "$got" 2>/dev/null &
LISTENER=$!
cleanup "kill $LISTENER"
for _ in $(seq 50); do ip netns exec "$P1" ss -Hlun "sport = :7777" | grep -q . && break; sleep 0.05; done

# vxlan_send NETNS-CMD... DST VNI INNER_SRC INNER_DST PAYLOAD: one VXLAN
# packet carrying Ethernet + IPv4 + UDP (port 7777), built by hand.
vxlan_send() {
  local dst=$1 vni=$2 src=$3 idst=$4 payload=$5; shift 5
  "$@" python3 -c '
import socket, struct, sys
dst, vni, src, idst, payload = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], sys.argv[5].encode()
def csum(b):
    if len(b) % 2: b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xFFFF); s += s >> 16
    return ~s & 0xFFFF
udp = struct.pack("!HHHH", 40000, 7777, 8 + len(payload), 0) + payload
ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, socket.inet_aton(src), socket.inet_aton(idst))
ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
eth = b"\xff" * 6 + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
vx = struct.pack("!II", 0x08000000, vni << 8)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(3): s.sendto(vx + eth + ip + udp, (dst, 4789))' "$dst" "$vni" "$src" "$idst" "$payload"
}

drops() { oc net status --node "$A" --json | jq -r '.dataplane.drop_tunnel'; }
received() { grep -c "$1" "$got" || true; }

step "control: real traffic from a pod on node b reaches P1 through VXLAN"
ok=0
for _ in $(seq 20); do
  ip netns exec "$P2" python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"legit", (sys.argv[1], 7777))' "$ip_p1"
  sleep 0.1
  [ "$(received legit)" -gt 0 ] && { ok=1; break; }
done
[ "$ok" = 1 ] || fail "a datagram from $P2 on node $B never reached $P1"
grep -q "^$ip_p2 legit" "$got" || fail "the legit datagram came from the wrong source: $(cat "$got")"
before=$(drops)

step "a fabric host that is no node injects into the VPC"
vxlan_send "$ip_a" "$VNI" "$ip_p2" "$ip_p1" fabric-forged oc fabric exec "$F" --
vxlan_send "$ip_a" "$VNI" 10.63.1.250 "$ip_p1" fabric-new oc fabric exec "$F" --

step "node b forges a pod of node a as the inner source"
vxlan_send "$ip_a" "$VNI" "$ip_p3" "$ip_p1" node-forged ip netns exec "oc-$B-soc"

step "the host domain sends VXLAN to its host-VF address"
vxlan_send "$soc_a" "$VNI" "$ip_p2" "$ip_p1" host-forged oc dpu exec --name "$A" --domain host --
sleep 0.5

for tag in fabric-forged fabric-new node-forged host-forged; do
  [ "$(received "$tag")" = 0 ] || fail "an injected frame ($tag) reached the pod: $(cat "$got")"
done
after=$(drops)
assert_cmp "$((after - before))" ">=" 9 "VXLAN drops counted by node $A (3 packets x 3 senders that reach the program)"
hostdrops=$(ip netns exec "oc-$A-soc" nft -j list chain ip offcore input | jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add')
assert_cmp "$hostdrops" ">=" 3 "VXLAN from the host domain dropped at the SoC's input"

step "real traffic still flows afterwards"
ip netns exec "$P2" python3 -c 'import socket,sys; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"after", (sys.argv[1], 7777))' "$ip_p1"
sleep 0.3
[ "$(received after)" -gt 0 ] || fail "legit traffic stopped after the injections"
