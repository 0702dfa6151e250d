#!/usr/bin/env bash
# A VM's NIC served by `offcore vm net-serve` (vhost-user-net) moves real
# traffic between the guest and a tap: the test makes a netns and a tap in it
# (`ip tuntap`, as netctl makes a representor; net-serve attaches to it),
# gives the tap an address and runs net-serve there; a guest (Linux
# virtio_net, TCG) configures eth0 with busybox, pings the tap's address,
# fetches 8 MiB of random data over TCP from the netns and sends it back;
# the SHA-256 must match on both sides. Once with one queue pair, once with
# two (multi_queue tap, mq=on, 2 vCPUs so the guest uses both pairs). Then
# net-serve is killed -9 under a running guest and started again: the guest's
# pings come back (QEMU reconnects).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"

NS=ocvn$ID
D=$GUEST_DIR/vmnet
mkdir -p "$D"
netns_add "$NS"
head -c $((8 << 20)) /dev/urandom >"$D/data"
SHA=$(sha256sum "$D/data" | cut -d' ' -f1)

# In the netns: on PORT, the first connection gets FILE (then EOF), the
# second one's bytes go to OUT until its EOF.
peer_server() {
  local addr=$1 port=$2 file=$3 out=$4
  ip netns exec "$NS" /usr/bin/python3 - "$addr" "$port" "$file" "$out" <<'EOF' &
import socket, sys
addr, port, path, out = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind((addr, port))
srv.listen(1)
srv.settimeout(240)
c, _ = srv.accept()
with open(path, "rb") as f:
    c.sendall(f.read())
c.shutdown(socket.SHUT_WR)
c.close()
c, _ = srv.accept()
c.settimeout(120)
with open(out, "wb") as f:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        f.write(b)
c.close()
EOF
  PEER_PID=$!
  cleanup "kill $PEER_PID"
}

guest_script() {
  local me=$1 peer=$2 port=$3
  cat <<EOF
#!/bin/sh
set -e
ip link set eth0 up
ip addr add $me/24 dev eth0
echo "QUEUES=\$(ls /sys/class/net/eth0/queues | grep -c rx-)"
ping -c 3 -W 5 $peer >/tmp/ping && echo PING=ok || { cat /tmp/ping; echo PING=failed; }
nc $peer $port >/tmp/in
echo "SIZE=\$(stat -c %s /tmp/in)"
echo "SHA=\$(sha256sum /tmp/in | cut -d' ' -f1)"
nc $peer $port </tmp/in >/dev/null
echo SENT=ok
EOF
}

# run_case LABEL PAIRS: one guest over net-serve with PAIRS queue pairs.
run_case() {
  local label=$1 pairs=$2 net=$3 tap=vnt$ID$1 sock=$D/$1.sock log=$D/$1.serve.log
  local peer=10.$net.0.1 me=10.$net.0.2 port=5000
  step "$label: tap $tap in $NS ($pairs queue pair(s)), net-serve on it"
  ip -n "$NS" tuntap add dev "$tap" mode tap $([ "$pairs" -gt 1 ] && echo multi_queue)
  ip -n "$NS" addr add "$peer/24" dev "$tap"
  ip -n "$NS" link set "$tap" up
  ip netns exec "$NS" "$OFFCORE" vm net-serve --socket "$sock" --tap "$tap" --queues "$pairs" >"$log" 2>&1 &
  local serve=$!
  cleanup "kill $serve"
  local i
  for (( i = 0; i < 100; i++ )); do [ -S "$sock" ] && break; sleep 0.1; done
  [ -S "$sock" ] || fail "$label: net-serve did not listen: $(tail -3 "$log")"
  peer_server "$peer" "$port" "$D/data" "$D/$label.back"

  step "$label: guest pings $peer and moves 8 MiB both ways over TCP"
  local t0=$SECONDS smp=1
  [ "$pairs" -gt 1 ] && smp=2
  guest_script "$me" "$peer" "$port" | guest_run "$label" --smp "$smp" --vhost-net "$sock,queues=$pairs" ||
    { guest_output "$label" | tail -20; tail -5 "$log"; fail "$label: the guest failed"; }
  echo "guest done in $((SECONDS - t0)) s"
  [ "$(guest_value "$label" PING)" = ok ] || fail "$label: the guest could not ping $peer"
  [ "$(guest_value "$label" QUEUES)" = "$pairs" ] ||
    fail "$label: the guest has $(guest_value "$label" QUEUES) rx queues, expected $pairs"
  [ "$(guest_value "$label" SIZE)" = $((8 << 20)) ] || fail "$label: the guest got $(guest_value "$label" SIZE) bytes"
  [ "$(guest_value "$label" SHA)" = "$SHA" ] || fail "$label: the data reached the guest changed"
  wait "$PEER_PID" || fail "$label: the netns side did not get the data back"
  [ "$(sha256sum "$D/$label.back" | cut -d' ' -f1)" = "$SHA" ] || fail "$label: the data sent back changed"
  echo "sha256 $SHA intact both ways"

  step "$label: net-serve stops on SIGTERM and says what it moved"
  kill -TERM "$serve"
  wait "$serve" || fail "$label: net-serve exited with $?: $(tail -3 "$log")"
  [ ! -e "$sock" ] || fail "$label: the socket is still there"
  local stats
  stats=$(grep '^tx ' "$log") || fail "$label: no counters in $(cat "$log")"
  echo "$stats"
  local rxb txb
  rxb=$(sed -n 's/.*rx \([0-9]*\) frames \([0-9]*\) bytes.*/\2/p' <<<"$stats")
  txb=$(sed -n 's/^tx \([0-9]*\) frames \([0-9]*\) bytes.*/\2/p' <<<"$stats")
  assert_cmp "$rxb" ">=" $((8 << 20)) "bytes delivered to the guest"
  assert_cmp "$txb" ">=" $((8 << 20)) "bytes the guest sent"
  [[ "$stats" == *"(0 dropped, 0 malformed); rx"* ]] || fail "$label: tx drops: $stats"
  ip -n "$NS" link del "$tap"
}

# restart_case: kill -9 net-serve under a running guest (as an agent's
# service can die), start it again: QEMU (reconnect=1) sets the rings up from
# the used index and the guest's traffic flows again.
restart_case() {
  local tap=vnt${ID}rs sock=$D/rs.sock log=$D/rs.serve.log peer=10.203.0.1 me=10.203.0.2 i serve
  step "restart: net-serve killed -9 under a running guest and started again"
  ip -n "$NS" tuntap add dev "$tap" mode tap
  ip -n "$NS" addr add "$peer/24" dev "$tap"
  ip -n "$NS" link set "$tap" up
  ip netns exec "$NS" "$OFFCORE" vm net-serve --socket "$sock" --tap "$tap" >>"$log" 2>&1 &
  serve=$!
  cleanup "kill $serve"
  for (( i = 0; i < 100; i++ )); do [ -S "$sock" ] && break; sleep 0.1; done
  # The guest pings until a ping is lost (the back end is gone), then until
  # one comes back.
  guest_boot rs --reconnect 1 --vhost-net "$sock" <<EOF
#!/bin/sh
ip link set eth0 up
ip addr add $me/24 dev eth0
ping -c 2 -W 5 $peer >/dev/null && echo BEFORE=ok
echo READY=1
n=0; while [ \$n -lt 120 ] && ping -c 1 -W 1 $peer >/dev/null; do n=\$((n + 1)); sleep 1; done
echo LOST=\$n
n=0; until [ \$n -ge 120 ] || ping -c 1 -W 1 $peer >/dev/null; do n=\$((n + 1)); done
[ \$n -lt 120 ] && echo AFTER=ok
exit 0
EOF
  for (( i = 0; i < 1200; i++ )); do grep -q '^READY=1' "$GUEST_DIR/rs.log" 2>/dev/null && break; sleep 0.1; done
  grep -q '^READY=1' "$GUEST_DIR/rs.log" || { guest_kill rs; fail "restart: the guest did not come up"; }
  kill -9 "$serve"
  wait "$serve" 2>/dev/null || true
  sleep 3
  ip netns exec "$NS" "$OFFCORE" vm net-serve --socket "$sock" --tap "$tap" >>"$log" 2>&1 &
  serve=$!
  cleanup "kill $serve"
  guest_wait rs || { guest_output rs | tail; fail "restart: the guest failed"; }
  [ "$(guest_value rs BEFORE)" = ok ] || fail "restart: no ping before the kill"
  local lost
  lost=$(guest_value rs LOST)
  [ -n "$lost" ] && [ "$lost" -lt 120 ] || fail "restart: the guest never saw the back end go (LOST=$lost)"
  [ "$(guest_value rs AFTER)" = ok ] || fail "restart: no ping after net-serve came back: $(tail -3 "$log")"
  echo "the guest pinged $peer again after the restart"
}

run_case one 1 201
run_case two 2 202
restart_case

step "a tap without multi_queue is refused for 2 queue pairs, in one line"
ip -n "$NS" tuntap add dev "vnt${ID}sq" mode tap
expect_fail "multi_queue" ip netns exec "$NS" "$OFFCORE" vm net-serve --socket "$D/sq.sock" --tap "vnt${ID}sq" --queues 2
[ ! -e "$D/sq.sock" ] || fail "a refused net-serve left its socket"
