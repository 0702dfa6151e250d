#!/usr/bin/env bash
# The SoC answers on its host-VF and fabric addresses for nothing: a socket
# bound to 0.0.0.0 in the SoC (as any service might bind) is unreachable from
# the host domain and from a fabric host, while the SoC's own connections
# and ping keep working.
source "$(dirname "$0")/lib.sh"
N=fw$ID
F=ff$ID
node_up "$N"
cleanup "\"$OFFCORE\" fabric host del $F"
oc fabric host add "$F" >/dev/null
soc_up=$(jq -r .uplink_ip "/run/offcore/$N/node.json"); soc_up=${soc_up%/*}
soc_hvf=$(jq -r .hostvf_soc_ip "/run/offcore/$N/node.json"); soc_hvf=${soc_hvf%/*}

# A TCP listener on every SoC address, as a careless service would open.
oc dpu exec --name "$N" --domain soc -- python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7070)); s.listen(8)
while True:
    c, _ = s.accept(); c.sendall(b"soc\n"); c.close()' >/dev/null 2>&1 &
LISTENER=$!
cleanup "kill $LISTENER"
for _ in $(seq 50); do
  oc dpu exec --name "$N" --domain soc -- ss -Hltn "sport = :7070" | grep -q . && break
  sleep 0.1
done

# try CMD... HOST: prints what the SoC answered, or nothing within 1 s.
try() {
  local host=${*: -1}
  "${@:1:$#-1}" python3 -c '
import socket, sys
try:
    print(socket.create_connection((sys.argv[1], 7070), timeout=1).recv(16).decode().strip())
except OSError:
    pass' "$host"
}

step "control: the SoC reaches its own listener"
[ "$(try oc dpu exec --name "$N" --domain soc -- 127.0.0.1)" = soc ] || fail "the listener does not answer locally"

step "the host domain and a fabric host cannot reach it"
[ -z "$(try oc dpu exec --name "$N" --domain host -- "$soc_hvf")" ] || fail "the host domain reached a SoC socket on $soc_hvf"
[ -z "$(try oc fabric exec "$F" -- "$soc_up")" ] || fail "a fabric host reached a SoC socket on $soc_up"

step "ping and the SoC's own connections still work"
oc dpu exec --name "$N" --domain host -- ping -c 1 -W 1 "$soc_hvf" >/dev/null || fail "the host cannot ping the SoC"
fip=$(oc fabric host list --json | jq -r --arg h "$F" '.[] | select(.name==$h) | .ip'); fip=${fip%/*}
# Not through the oc() function: a backgrounded function is a subshell, and
# killing it would leave the listener (and the fabric lock it inherited).
# fabric exec replaces itself with python, so $! is the listener.
"$OFFCORE" fabric exec "$F" -- python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 7071)); s.listen(1); c, _ = s.accept(); c.sendall(b"fabric\n"); c.close()' &
FL=$!
cleanup "kill $FL 2>/dev/null"
sleep 0.3
got=$(oc dpu exec --name "$N" --domain soc -- python3 -c '
import socket, sys
print(socket.create_connection((sys.argv[1], 7071), timeout=2).recv(16).decode().strip())' "$fip")
[ "$got" = fabric ] || fail "the SoC's own connection to a fabric host failed: '$got'"
drops=$(oc dpu exec --name "$N" --domain soc -- nft -j list chain ip offcore input |
  jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add')
assert_cmp "$drops" ">=" 2 "SYNs dropped at the SoC's input"
