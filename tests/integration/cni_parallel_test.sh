#!/usr/bin/env bash
# PODS CNI ADDs at once (20 by default), then as many DELs at once, the way
# kubelets starting a deployment and then scaling it to zero call the
# plugin: distinct addresses, each on its pod's eth0, one endpoint per pod;
# after the DELs no endpoint, no representor and no VF is left. With
# OC_CNI_NODES=2 the pods alternate between two nodes (their agents then
# allocate addresses concurrently, each from its own SoC). On etcd
# (OC_CLUSTER_STORE=etcd) the endpoints are also checked in etcd itself.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
PODS=${OC_CNI_PODS:-20}
NODES=("cp$ID")
[ "${OC_CNI_NODES:-1}" = 2 ] && NODES+=("cq$ID")
for n in "${NODES[@]}"; do
  # On etcd the CLI reaches the members on fabric hosts through the first node's SoC: its host is this namespace.
  if [ "${OC_CLUSTER_STORE:-dir}" = etcd ] && [ "$n" = "${NODES[0]}" ]; then node_up "$n"; else node_up "$n" --host-netns "h$n"; fi
done
cat > "$SVC_T/net.yaml" <<YAML
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: par}
spec: {vpc: default, cidr: 10.62.0.0/24}
YAML
oc svc apply -f "$SVC_T/net.yaml"
endpoints() { oc svc list --kind Endpoint --json | jq -c '[.[] | select(.kind == "Endpoint")]'; }
representors() {
  local total=0 n c
  for n in "${NODES[@]}"; do
    c=$(ip -n "oc-$n-soc" -o link show | grep -c ' pf0vf' || true)
    total=$((total + c))
  done
  echo "$total"
}

pods=() node_of=()
for i in $(seq "$PODS"); do
  pods+=("pp$i-$ID")
  node_of+=("${NODES[$((i % ${#NODES[@]}))]}")
  netns_add "pp$i-$ID"
  cleanup "cni DEL ${node_of[$((i - 1))]} pp$i-$ID par default >/dev/null 2>&1"
done

step "$PODS ADDs at once over ${#NODES[@]} node(s)"
t0=$(date +%s%N)
# (Waits for these jobs only: etcd members started by the library are jobs of this shell too.)
adds=()
for i in "${!pods[@]}"; do
  cni ADD "${node_of[$i]}" "${pods[$i]}" par default > "$SVC_T/${pods[$i]}.add" 2>&1 &
  adds+=($!)
done
wait "${adds[@]}" || true
echo "$PODS ADDs took $(( ($(date +%s%N) - t0) / 1000000 )) ms"
addrs=()
for p in "${pods[@]}"; do
  a=$(jq -r '.ips[0].address' "$SVC_T/$p.add" 2>/dev/null) || fail "ADD $p: $(cat "$SVC_T/$p.add")"
  [ -n "$a" ] && [ "$a" != null ] || fail "ADD $p gave no address: $(cat "$SVC_T/$p.add")"
  out=$(ip -n "$p" -o addr show dev eth0)
  [[ "$out" == *" ${a%/*}/"* ]] || fail "$p's eth0 does not hold $a: $out"
  addrs+=("${a%/*}")
done
distinct=$(printf '%s\n' "${addrs[@]}" | sort -u | wc -l)
echo "$PODS ADDs: $distinct distinct addresses"
[ "$distinct" = "$PODS" ] || fail "addresses handed out twice: $(printf '%s\n' "${addrs[@]}" | sort | uniq -d | tr '\n' ' ')"
[ "$(endpoints | jq length)" = "$PODS" ] || fail "expected $PODS endpoints: $(endpoints)"
[ "$(representors)" = "$PODS" ] || fail "expected $PODS representors in the SoCs, found $(representors)"
if [ "${OC_CLUSTER_STORE:-dir}" = etcd ]; then
  # What etcd holds, read by etcdctl: one key per pod, no address twice, each the address its pod got.
  etcdctl_c get --prefix /offcore/v1/endpoints/ --print-value-only > "$SVC_T/etcd-endpoints"
  [ "$(jq -s length "$SVC_T/etcd-endpoints")" = "$PODS" ] || fail "etcd holds $(jq -s length "$SVC_T/etcd-endpoints") endpoints"
  [ "$(jq -r .ip "$SVC_T/etcd-endpoints" | sort -u | wc -l)" = "$PODS" ] || fail "etcd holds an address twice"
  diff <(jq -r .ip "$SVC_T/etcd-endpoints" | sort) <(printf '%s\n' "${addrs[@]}" | sort) >/dev/null ||
    fail "etcd's addresses are not the ones the pods got"
  echo "etcd: $PODS endpoint keys, $PODS distinct addresses, the pods' own"
fi
# Each pod reaches its gateway: the VF is wired, not only addressed.
gw=$(jq -r '.ips[0].gateway' "$SVC_T/${pods[0]}.add")
ip netns exec "${pods[0]}" ping -c1 -W2 "$gw" >/dev/null || fail "${pods[0]} cannot reach its gateway $gw"

step "$PODS DELs at once"
dels=()
for i in "${!pods[@]}"; do
  cni DEL "${node_of[$i]}" "${pods[$i]}" par default > "$SVC_T/${pods[$i]}.del" 2>&1 &
  dels+=($!)
done
rc=0
for job in "${dels[@]}"; do wait "$job" || rc=1; done
[ "$rc" = 0 ] || fail "a DEL failed: $(cat "$SVC_T"/*.del)"
[ "$(endpoints | jq length)" = 0 ] || fail "DELs left endpoints: $(endpoints)"
[ "$(representors)" = 0 ] || fail "DELs left $(representors) representors in the SoCs"
for p in "${pods[@]}"; do
  ! ip -n "$p" link show eth0 >/dev/null 2>&1 || fail "DEL left eth0 in $p"
done
echo "nothing left over"
