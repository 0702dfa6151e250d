# Helpers for the service mesh tests (sourced after lib.sh and svc_lib.sh).

# mesh_pod_add NODE POD SUBNET [SERVICE_ACCOUNT [NAMESPACE]]: a pod in the
# node's mesh ("mesh": true in its CNI config); its address lands in POD_IP.
mesh_pod_add() {
  local node=$1 pod=$2 subnet=$3 sa=${4:-default} ns=${5:-default} out
  netns_add "$pod"
  cleanup "cni DEL $node $pod $subnet default"
  out=$(printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","node":"%s","subnet":"%s","mesh":true}' \
    "$node" "$subnet" |
    CNI_COMMAND=ADD CNI_CONTAINERID=$pod CNI_NETNS=/var/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
      CNI_ARGS="K8S_POD_NAME=$pod;K8S_POD_NAMESPACE=$ns;OFFCORE_SERVICE_ACCOUNT=$sa" "$CNI") ||
    fail "CNI ADD of mesh pod $pod: $out"
  POD_IP=$(echo "$out" | jq -r '.ips[0].address' | cut -d/ -f1)
}

# mesh_up NODE: the node's proxy, stopped (forced) at exit.
mesh_up() {
  cleanup "\"$OFFCORE\" mesh down --node $1 --force"
  oc mesh up --node "$1"
}

# echo_serve POD PORT: a raw TCP echo server (not HTTP), prefixing each reply
# with the peer address it saw.
echo_serve() {
  local pod=$1 port=$2 pid
  ip netns exec "$pod" python3 -c '
import socket, sys, threading
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(64)
def serve(c, peer):
    with c:
        while True:
            d = c.recv(65536)
            if not d: return
            c.sendall(peer[0].encode() + b" " + d)
while True:
    c, peer = s.accept(); threading.Thread(target=serve, args=(c, peer), daemon=True).start()' "$port" >/dev/null 2>&1 &
  pid=$!
  cleanup "kill $pid"
  for _ in $(seq 100); do
    ip netns exec "$pod" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  fail "the echo server in $pod did not listen on $port"
}

# echo_get POD IP PORT TEXT: one connection, sends TEXT, prints the reply.
echo_get() {
  ip netns exec "$1" python3 -c '
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)
c.sendall(sys.argv[3].encode()); c.shutdown(socket.SHUT_WR)
out = b""
while True:
    d = c.recv(65536)
    if not d: break
    out += d
print(out.decode())' "$2" "$3" "$4"
}

# mesh_counter NODE NAME: a dataplane counter (mesh_out, mesh_in, ...).
mesh_counter() { oc net status --node "$1" --json | jq -r ".dataplane.$2"; }

# The pod's namespace must hold nothing of the mesh: no nftables/iptables
# rules, no policy routing beyond the kernel's three default rules.
assert_pod_untouched() {
  local pod=$1 rules
  rules=$(ip netns exec "$pod" nft list ruleset 2>/dev/null)
  [ -z "$rules" ] || fail "pod $pod has nftables rules: $rules"
  [ "$(ip netns exec "$pod" ip rule show | wc -l)" = 3 ] || fail "pod $pod has policy routing: $(ip netns exec "$pod" ip rule show)"
}

# nginx_serve POD PORT: nginx answering "POD" on every path (keep-alive).
nginx_serve() {
  local pod=$1 port=$2 d
  d=$(mktemp -d "/tmp/ocnginx.$pod.XXXXXX"); mkdir -p "$d/tmp"
  cleanup "rm -rf $d"
  cat > "$d/nginx.conf" <<EOF2
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
  server { listen $port backlog=4096; default_type text/plain; location / { return 200 "$pod\n"; } }
}
EOF2
  ip netns exec "$pod" nginx -p "$d/" -e "$d/error.log" -c "$d/nginx.conf" &
  cleanup "kill $!"
  for _ in $(seq 100); do
    ip netns exec "$pod" curl -sf -o /dev/null "http://127.0.0.1:$port/" && return 0
    sleep 0.05
  done
  fail "nginx in $pod did not start: $(tail -3 "$d/error.log")"
}

# wrk_errors WRK_OUTPUT: socket errors + non-2xx responses wrk reported.
wrk_errors() {
  local out=$1 sock non2xx
  sock=$(echo "$out" | sed -n 's/.*Socket errors: connect \([0-9]*\), read \([0-9]*\), write \([0-9]*\), timeout \([0-9]*\).*/\1 \2 \3 \4/p')
  non2xx=$(echo "$out" | sed -n 's/.*Non-2xx or 3xx responses: \([0-9]*\).*/\1/p')
  local n=0
  for v in $sock ${non2xx:-0}; do n=$((n + v)); done
  echo "$n"
}
