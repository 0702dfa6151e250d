# Helpers for the pod networking and Service tests (sourced after lib.sh).
# Pods are network namespaces wired by the real CNI plugin; servers are
# small python programs that answer with their pod name and the peer address
# they saw, so a test can tell which backend answered and whether SNAT
# happened.

CNI=${CNI:-$(dirname "$OFFCORE")/offcore-cni}
[ -x "$CNI" ] || fail "the CNI plugin is not built: $CNI"
SVC_T=$(mktemp -d /tmp/ocsvc.XXXXXX)
cleanup "rm -rf $SVC_T"
# A private cluster state, so tests never see each other's Services: a
# directory, or with OC_CLUSTER_STORE=etcd a 3-member etcd cluster of its own
# on three fabric hosts. svc_config [FIELDS] (re)writes the config with more
# fields, e.g. '"node_expiry_ms": 2000'.
CLUSTER_JSON="\"cluster_dir\": \"$SVC_T/cluster\""
case ${OC_CLUSTER_STORE:-dir} in
  dir) ;;
  etcd)
    etcd_cluster_up "$SVC_T/etcd" "ea$ID" "eb$ID" "ec$ID"
    CLUSTER_JSON+=", \"cluster_store\": \"$ETCD_URL\""
    ;;
  *) fail "OC_CLUSTER_STORE is dir or etcd" ;;
esac
svc_config() { printf '{%s%s}\n' "$CLUSTER_JSON" "${1:+, $1}" > "$SVC_T/config.json"; }
svc_config
export OFFCORE_CONFIG=$SVC_T/config.json

# cni CMD NODE POD SUBNET [VPC [EXTRA]] -> the plugin's stdout; EXTRA is more
# config fields, e.g. ',"prevResult":{...}' for CHECK.
cni() {
  local cmd=$1 node=$2 pod=$3 subnet=$4 vpc=${5:-default} extra=${6:-}
  printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","node":"%s","vpc":"%s","subnet":"%s"%s}' \
    "$node" "$vpc" "$subnet" "$extra" |
    CNI_COMMAND=$cmd CNI_CONTAINERID=$pod CNI_NETNS=/var/run/netns/$pod CNI_IFNAME=eth0 CNI_PATH=/opt/cni/bin \
      CNI_ARGS="K8S_POD_NAME=$pod" "$CNI"
}

# pod_add NODE POD SUBNET VPC: a namespace with an offcore VF; its address
# lands in POD_IP, the ADD result in POD_RESULT. (Not a $(...) call: cleanups registered in a subshell
# would be lost.)
pod_add() {
  local node=$1 pod=$2 subnet=$3 vpc=$4 out
  netns_add "$pod"
  cleanup "cni DEL $node $pod $subnet $vpc"
  out=$(cni ADD "$node" "$pod" "$subnet" "$vpc") || fail "CNI ADD $pod: $out"
  POD_IP=$(echo "$out" | jq -r '.ips[0].address' | cut -d/ -f1)
  POD_RESULT=$out
}

# serve POD PORT: an HTTP server answering "POD PEER-IP"; UDP echo on PORT too.
# Its PID lands in SERVER_PID[POD].
declare -A SERVER_PID
serve() {
  local pod=$1 port=$2
  ip netns exec "$pod" python3 -c '
import socket, sys, threading, http.server
name, port = sys.argv[1], int(sys.argv[2])
def udp():
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("0.0.0.0", port))
    while True:
        data, peer = u.recvfrom(2048); u.sendto((name + " " + peer[0]).encode(), peer)
threading.Thread(target=udp, daemon=True).start()
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = (name + " " + self.client_address[0] + "\n").encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body))); self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.ThreadingHTTPServer.allow_reuse_address = True
http.server.ThreadingHTTPServer(("0.0.0.0", port), H).serve_forever()' "$pod" "$port" >/dev/null 2>&1 &
  SERVER_PID[$pod]=$!
  cleanup "kill ${SERVER_PID[$pod]}"
  for _ in $(seq 100); do
    ip netns exec "$pod" ss -Hltn "sport = :$port" | grep -q . && return 0
    sleep 0.05
  done
  fail "the server in $pod did not listen on $port"
}

# get NETNS URL: one request, new connection, 2 s budget; prints the body.
get() { ip netns exec "$1" curl -s --max-time 2 "$2"; }

# udp NETNS IP PORT: one datagram, prints the reply.
udp() {
  ip netns exec "$1" python3 -c '
import socket, sys
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
u.sendto(b"ping", (sys.argv[1], int(sys.argv[2]))); print(u.recvfrom(2048)[0].decode())' "$2" "$3"
}

# Waits until `svc get` shows every node has programmed the store's generation.
wait_programmed() {
  local svc=$1 doc gen
  for _ in $(seq 100); do
    doc=$(oc svc get "$svc" --json 2>/dev/null) || { sleep 0.1; continue; }
    gen=$(echo "$doc" | jq -r '.generation')
    if echo "$doc" | jq -e --argjson g "$gen" '[.programmed[]] | length > 0 and all(. >= $g)' >/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  fail "Service $svc was not programmed on every node: $(oc svc get "$svc" --json)"
}
