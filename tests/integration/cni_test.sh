#!/usr/bin/env bash
# offcore-cni end to end.
#  1. The plugin run by hand with CNI_* variables, the way a runtime runs it:
#     ADD into a netns (result matches the pod's eth0), ADD again (same
#     address), CHECK against prevResult, DEL three times (the last with the
#     netns gone), VERSION, and bad input that must be refused with the right
#     CNI code while allocating nothing.
#  2. A real runtime: `ctr run --cni` on a private containerd. ctr reads CNI
#     config only from /etc/cni/net.d and plugins from /opt/cni/bin or
#     /usr/lib/cni, so it runs in a private mount namespace with test-owned
#     dirs bind-mounted there; the container gets its address from the agent
#     and pings its gateway, and ctr's DEL removes the endpoint on exit.
# The test keeps its own cluster store (OFFCORE_CONFIG -> cluster_dir).
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
CNI=${OFFCORE_CNI:-$(dirname "$OFFCORE")/offcore-cni}
[ -x "$CNI" ] || fail "$CNI not built (ninja offcore-cni); it sits next to the offcore binary"
for t in jq ip unshare containerd ctr runc containerd-shim-runc-v2 umoci busybox; do
  command -v "$t" >/dev/null || fail "$t missing: apt-get install containerd runc umoci busybox-static jq"
done

N=cn$ID
P=cnp$ID    # the pod netns of part 1
P2=cnq$ID   # a netns deleted before DEL
work=$(mktemp -d /var/tmp/oc-cni-XXXX); cleanup "rm -rf $work"
keep_logs "$work"
CLUSTER=/var/lib/offcore/cluster-cni$ID
cleanup "rm -rf $CLUSTER"
printf '{"cluster_dir": "%s"}\n' "$CLUSTER" > "$work/config.json"
export OFFCORE_CONFIG=$work/config.json

cat > "$work/net.yaml" <<'YAML'
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vpc1}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: sub1}
spec: {vpc: vpc1, cidr: 10.61.0.0/24}
YAML
oc svc apply -f "$work/net.yaml"
netns_add "h$N"
node_up "$N" --host-netns "h$N" >/dev/null
cleanup "cp /run/offcore/$N/agent.log $work/agent.log"
netns_add "$P"

# conf VERSION [EXTRA]: the network configuration, EXTRA appended as fields.
conf() {
  printf '{"cniVersion":"%s","name":"ocnet","type":"offcore-cni","node":"%s","vpc":"vpc1","subnet":"sub1"%s}' \
    "$1" "${NODE:-$N}" "${2:-}"
}
# cni COMMAND CONTAINERID NETNS STDIN: runs the plugin; sets OUT, RC, ERR.
cni() {
  RC=0
  OUT=$(printf '%s' "$4" | env CNI_COMMAND="$1" CNI_CONTAINERID="$2" CNI_NETNS="$3" CNI_IFNAME=eth0 \
    CNI_PATH="$(dirname "$CNI")" CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=pod$ID" \
    "$CNI" 2>"$work/cni.err") || RC=$?
  ERR=$(cat "$work/cni.err")
}
# cni_ok / cni_refused CODE: the last run's outcome.
cni_ok() { [ "$RC" -eq 0 ] || fail "plugin exited $RC: $OUT $ERR"; }
cni_refused() {
  [ "$RC" -ne 0 ] || fail "plugin succeeded, expected CNI code $1: $OUT"
  jq -e --argjson c "$1" '.code == $c and (.msg | type == "string" and length > 0)' <<<"$OUT" >/dev/null \
    || fail "expected CNI error code $1, got: $OUT"
  echo "ok (code $1): $(jq -r .msg <<<"$OUT")"
}
endpoints() { oc svc list --kind Endpoint --json | jq -c '[.[] | select(.kind == "Endpoint")]'; }
endpoint_count() { endpoints | jq length; }
netns_path() { echo "/var/run/netns/$1"; }

step "VERSION"
OUT=$(CNI_COMMAND=VERSION "$CNI" </dev/null)
[ "$OUT" = '{"cniVersion":"1.0.0","supportedVersions":["0.3.0","0.3.1","0.4.0","1.0.0"]}' ] || fail "VERSION: $OUT"

step "bad input is refused with the right code and allocates nothing"
C=cbad$ID
cni ADD "$C" "$(netns_path "$P")" 'this is not json'; cni_refused 6
cni ADD "$C" "$(netns_path "$P")" '{"cniVersion":"1.0.0","name":"ocnet","type":"offcore-cni","subnet":"sub1"}'
cni_refused 7; jq -e '.msg | contains("node")' <<<"$OUT" >/dev/null || fail "msg does not name the field: $OUT"
cni ADD "$C" "$(netns_path "$P")" "$(conf 1.0.0 ',"mtu":"1450"')"
cni_refused 7; jq -e '.msg | contains("mtu")' <<<"$OUT" >/dev/null || fail "msg does not name mtu: $OUT"
cni ADD "$C" "$(netns_path "$P")" "$(conf 0.2.0)"; cni_refused 1
cni ADD "$C" "$(netns_path "nope$ID")" "$(conf 1.0.0)"; cni_refused 3
cni ADD "$C" "$(netns_path "$P")" "$(conf 1.0.0 | sed 's/"sub1"/"nosuch"/')"; cni_refused 7
cni ADD "" "$(netns_path "$P")" "$(conf 1.0.0)"; cni_refused 4
[ "$(endpoint_count)" = 0 ] || fail "refused ADDs left endpoints: $(endpoints)"
! ip -n "$P" link show eth0 >/dev/null 2>&1 || fail "a refused ADD left eth0 in $P"

step "a node that is not running: ADD says so (code 11), DEL succeeds"
cni ADD "$C" "$(netns_path "$P")" "$(NODE=nx$ID conf 1.0.0)"; cni_refused 11
jq -e '.msg | contains("offcore dpu up")' <<<"$OUT" >/dev/null || fail "msg does not say how to start the node: $OUT"
cni DEL "$C" "$(netns_path "$P")" "$(NODE=nx$ID conf 1.0.0)"; cni_ok
[ -z "$OUT" ] || fail "DEL printed: $OUT"
[[ "$ERR" == *warning* ]] || fail "DEL without an agent printed no warning"

step "ADD"
C1=cnia$ID
cni ADD "$C1" "$(netns_path "$P")" "$(conf 1.0.0)"; cni_ok
RESULT=$OUT
echo "$RESULT"
addr=$(jq -r '.ips[0].address' <<<"$RESULT")
gw=$(jq -r '.ips[0].gateway' <<<"$RESULT")
# The pod's address is in sub1; the agent may hand it out as a /32 (the
# pod reaches everything through the onlink gateway) or with the subnet's /24.
[[ "$addr" =~ ^10\.61\.0\.[0-9]+/(24|32)$ ]] || fail "address $addr is not in sub1 (10.61.0.0/24)"
jq -e '.cniVersion == "1.0.0" and (.interfaces | length == 1) and .interfaces[0].name == "eth0"
       and .ips[0].interface == 0 and (.ips[0] | has("version") | not)
       and (.routes | any(.dst == "0.0.0.0/0")) and (.dns | type == "object")' <<<"$RESULT" >/dev/null \
  || fail "result shape: $RESULT"
[ "$(jq -r '.interfaces[0].sandbox' <<<"$RESULT")" = "$(netns_path "$P")" ] || fail "sandbox is not the netns path"
mac=$(ip -n "$P" -j link show eth0 | jq -r '.[0].address')
[ "$(jq -r '.interfaces[0].mac' <<<"$RESULT")" = "$mac" ] || fail "result mac differs from eth0's $mac"
ip -n "$P" -o -4 addr show eth0 | grep -qw "$addr" || fail "eth0 in $P does not carry $addr"
[ "$(ip -n "$P" -j link show eth0 | jq -r '.[0].mtu')" = 1450 ] || fail "eth0 mtu is not the default 1450"
endpoints | jq -e --arg ip "${addr%/*}" --arg p "pod$ID" 'length == 1 and .[0].ip == $ip and .[0].pod == $p' >/dev/null \
  || fail "endpoint list: $(endpoints)"
ip netns exec "$P" ping -c 1 -W 2 "$gw" >/dev/null || fail "the pod cannot ping its gateway $gw"

step "ADD again is safe: same address, one endpoint"
cni ADD "$C1" "$(netns_path "$P")" "$(conf 1.0.0)"; cni_ok
[ "$(jq -r '.ips[0].address' <<<"$OUT")" = "$addr" ] || fail "second ADD gave $(jq -r '.ips[0].address' <<<"$OUT")"
[ "$(jq -r '.interfaces[0].mac' <<<"$OUT")" = "$mac" ] || fail "second ADD changed the mac"
[ "$(endpoint_count)" = 1 ] || fail "second ADD: $(endpoints)"

step "CHECK against prevResult"
cni CHECK "$C1" "$(netns_path "$P")" "$(conf 1.0.0 ",\"prevResult\":$RESULT")"; cni_ok
[ -z "$OUT" ] || fail "CHECK printed: $OUT"
wrong=$(jq -c '.ips[0].address = "10.61.0.254/24"' <<<"$RESULT")
cni CHECK "$C1" "$(netns_path "$P")" "$(conf 1.0.0 ",\"prevResult\":$wrong")"; cni_refused 7
cni CHECK "other$ID" "$(netns_path "$P")" "$(conf 1.0.0 ",\"prevResult\":$RESULT")"; cni_refused 3

step "DEL, DEL again"
cni DEL "$C1" "$(netns_path "$P")" "$(conf 1.0.0 ",\"prevResult\":$RESULT")"; cni_ok
[ -z "$OUT" ] || fail "DEL printed: $OUT"
[ "$(endpoint_count)" = 0 ] || fail "DEL left: $(endpoints)"
! ip -n "$P" link show eth0 >/dev/null 2>&1 || fail "DEL left eth0 in $P"
cni DEL "$C1" "$(netns_path "$P")" "$(conf 1.0.0)"; cni_ok

step "DEL after the netns is gone (a crashed sandbox); a 0.3.1 result names the family"
C2=cnib$ID
ip netns add "$P2"; cleanup "ip netns delete $P2"
cni ADD "$C2" "$(netns_path "$P2")" "$(conf 0.3.1)"; cni_ok
jq -e '.cniVersion == "0.3.1" and .ips[0].version == "4"' <<<"$OUT" >/dev/null || fail "0.3.1 result: $OUT"
[ "$(endpoint_count)" = 1 ] || fail "ADD in $P2: $(endpoints)"
ip netns delete "$P2"
cni DEL "$C2" "$(netns_path "$P2")" "$(conf 0.3.1)"; cni_ok
[ "$(endpoint_count)" = 0 ] || fail "DEL with the netns gone left: $(endpoints)"
cni DEL "$C2" "" "$(conf 0.3.1)"; cni_ok

step "ctr run --cni: a runtime drives the plugin"
CD_DIR=$work/cd
containerd_up "$CD_DIR"
# A busybox image with ip and ping.
oci=$work/oci
umoci init --layout "$oci"
umoci new --image "$oci:v1"
umoci unpack --image "$oci:v1" "$work/bundle" >/dev/null
r=$work/bundle/rootfs
mkdir -p "$r/bin" "$r/tmp"
cp "$(command -v busybox)" "$r/bin/busybox"
for a in sh ip ping sleep cat; do ln -s busybox "$r/bin/$a"; done
umoci repack --image "$oci:v1" "$work/bundle" >/dev/null
umoci config --image "$oci:v1" --config.env PATH=/bin --config.cmd /bin/sh
tar -C "$oci" -cf "$work/bb.tar" .
IMG=localhost/oc-cni-bb$ID
$CTR image import --base-name "$IMG" "$work/bb.tar" >/dev/null
IMG=$IMG:v1
$CTR image ls -q | grep -qx "$IMG" || fail "image $IMG not imported: $($CTR image ls -q)"

# What ctr will find in the private mount namespace.
mkdir -p "$work/net.d" "$work/bin" "$work/cni-cache"
cp "$CNI" "$work/bin/offcore-cni"
printf '{"cniVersion":"1.0.0","name":"ocnet","plugins":[{"type":"offcore-cni","node":"%s","vpc":"vpc1","subnet":"sub1"}]}\n' \
  "$N" > "$work/net.d/10-offcore.conflist"
# Missing mount points are created; on exit the dirs this test made are
# removed again (deepest first, and only while empty).
for d in /etc/cni/net.d /opt/cni/bin /var/lib/cni; do
  made=()
  p=$d
  while [ ! -e "$p" ]; do made+=("$p"); p=$(dirname "$p"); done
  mkdir -p "$d"
  [ ${#made[@]} -eq 0 ] || cleanup "rmdir ${made[*]}"
done
ctr_cni() {
  unshare -m --propagation private sh -c '
    set -e
    mount --make-rprivate /
    mount --bind "$1/net.d" /etc/cni/net.d
    mount --bind "$1/bin" /opt/cni/bin
    mount --bind "$1/cni-cache" /var/lib/cni
    shift
    exec "$@"' ctr_cni "$work" $CTR "$@"
}
CID=c$ID
ctr_cni run --rm --cni "$IMG" "$CID" sh -c \
  'ip -o -4 addr show eth0; ip -o link show eth0; ping -c 1 -W 2 169.254.1.1 && echo PING-OK; sleep 2' \
  >"$work/ctr.out" 2>"$work/ctr.log" &
ctr_pid=$!
cleanup "kill $ctr_pid 2>/dev/null"
seen=""
for _ in $(seq 100); do
  seen=$(endpoints | jq -c --arg c "default-$CID" '.[] | select(.id | contains($c))')
  [ -n "$seen" ] && break
  sleep 0.1
done
wait "$ctr_pid" || fail "ctr run --cni failed: $(tail -5 "$work/ctr.log") $(cat "$work/ctr.out")"
cat "$work/ctr.out"
[ -n "$seen" ] || fail "no endpoint appeared while the container ran"
ctr_ip=$(jq -r .ip <<<"$seen")
[[ "$ctr_ip" =~ ^10\.61\.0\.[0-9]+$ ]] || fail "container endpoint address $ctr_ip not in sub1"
grep -q "inet $ctr_ip/" "$work/ctr.out" || fail "the container's eth0 does not carry $ctr_ip"
ctr_mac=$(jq -r .mac <<<"$seen")
grep -qi "link/ether $ctr_mac" "$work/ctr.out" || fail "the container's eth0 mac is not the endpoint's $ctr_mac"
grep -q PING-OK "$work/ctr.out" || fail "the container could not ping its gateway"
[ "$(endpoint_count)" = 0 ] || fail "ctr's DEL did not remove the endpoint: $(endpoints)"
[ -z "$(ls -A "$work/cni-cache/results" 2>/dev/null)" ] || fail "libcni result cache left: $(ls "$work/cni-cache/results")"
