#!/usr/bin/env bash
# The host domain (root namespace) reaches a fabric host only through its
# SoC: the traffic shows up on the SoC's host-VF and uplink counters, and the
# fabric host sees the SoC's address (masquerade), not the host's.
source "$(dirname "$0")/lib.sh"
N=hn$ID
H=fh$ID
if ip route show 10.77.0.0/16 type unicast | grep -q .; then
  fail "the root namespace already routes the fabric (another node is up); run \`offcore dpu list\`"
fi
node_up "$N"
cleanup "\"$OFFCORE\" fabric host del $H"
oc fabric host add "$H"
hip=$(oc fabric host list --json | jq -r --arg h "$H" '.[] | select(.name==$h) | .ip'); hip=${hip%/*}

step "the host's route to the fabric goes through its host-VF"
ip route get "$hip" | grep -q "dev och-$N" || fail "route: $(ip route get "$hip")"

counters() { ip -n "oc-$N-soc" -j -s link show "$1" | jq -r ".[0].stats64.$2.packets"; }
up_tx0=$(counters up0 tx); hvf_rx0=$(counters hvf0 rx)
step "ping from the host domain to the fabric host"
oc dpu exec --name "$N" --domain host -- ping -c 5 -i 0.2 -W 1 "$hip"
up_tx1=$(counters up0 tx); hvf_rx1=$(counters hvf0 rx)
echo "SoC hvf0 rx +$(( hvf_rx1 - hvf_rx0 )), up0 tx +$(( up_tx1 - up_tx0 ))"
assert_cmp $(( hvf_rx1 - hvf_rx0 )) ">=" 5 "packets into the SoC from the host"
assert_cmp $(( up_tx1 - up_tx0 )) ">=" 5 "packets out of the SoC uplink"

step "the fabric host sees the SoC's uplink address (NAT in the SoC)"
soc_ip=$(status_field "$N" .network.uplink.ip); soc_ip=${soc_ip%/*}
port=$(( 20000 + ID % 20000 ))
oc fabric exec "$H" -- timeout 5 python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(1)
c, addr = s.accept(); c.sendall(addr[0].encode()); c.close()' "$port" &
srv=$!
sleep 0.5
seen=$(oc dpu exec --name "$N" --domain host -- timeout 3 python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2); print(c.recv(64).decode())' "$hip" "$port")
wait "$srv" || true
[ "$seen" = "$soc_ip" ] || fail "fabric host saw $seen, expected the SoC uplink $soc_ip"
echo "fabric host saw the connection from $seen"
