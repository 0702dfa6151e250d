#!/usr/bin/env bash
# 20 CNI ADDs at once, then 20 DELs at once, the way a kubelet starting a
# deployment and then scaling it to zero calls the plugin: 20 distinct
# addresses, each on its pod's eth0, one endpoint per pod; after the DELs no
# endpoint, no representor and no VF is left.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
N=cp$ID
node_up "$N" --host-netns "h$N"
cat > "$SVC_T/net.yaml" <<YAML
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: par}
spec: {vpc: default, cidr: 10.62.0.0/24}
YAML
oc svc apply -f "$SVC_T/net.yaml"
endpoints() { oc svc list --kind Endpoint --json | jq -c '[.[] | select(.kind == "Endpoint")]'; }
representors() { ip -n "oc-$N-soc" -o link show | grep -c ' pf0vf' || true; }

pods=()
for i in $(seq 20); do
  pods+=("pp$i-$ID")
  netns_add "pp$i-$ID"
  cleanup "cni DEL $N pp$i-$ID par default >/dev/null 2>&1"
done

step "20 ADDs at once"
for p in "${pods[@]}"; do
  cni ADD "$N" "$p" par default > "$SVC_T/$p.add" 2>&1 &
done
wait
addrs=()
for p in "${pods[@]}"; do
  a=$(jq -r '.ips[0].address' "$SVC_T/$p.add" 2>/dev/null) || fail "ADD $p: $(cat "$SVC_T/$p.add")"
  [ -n "$a" ] && [ "$a" != null ] || fail "ADD $p gave no address: $(cat "$SVC_T/$p.add")"
  out=$(ip -n "$p" -o addr show dev eth0)
  [[ "$out" == *" ${a%/*}/"* ]] || fail "$p's eth0 does not hold $a: $out"
  addrs+=("${a%/*}")
done
distinct=$(printf '%s\n' "${addrs[@]}" | sort -u | wc -l)
echo "20 ADDs: $distinct distinct addresses (${addrs[0]} .. ${addrs[19]})"
[ "$distinct" = 20 ] || fail "addresses handed out twice: ${addrs[*]}"
[ "$(endpoints | jq length)" = 20 ] || fail "expected 20 endpoints: $(endpoints)"
[ "$(representors)" = 20 ] || fail "expected 20 representors in the SoC, found $(representors)"
# Each pod reaches its gateway: the VF is wired, not only addressed.
gw=$(jq -r '.ips[0].gateway' "$SVC_T/${pods[0]}.add")
ip netns exec "${pods[0]}" ping -c1 -W2 "$gw" >/dev/null || fail "${pods[0]} cannot reach its gateway $gw"

step "20 DELs at once"
for p in "${pods[@]}"; do
  cni DEL "$N" "$p" par default > "$SVC_T/$p.del" 2>&1 &
done
rc=0
for job in $(jobs -p); do wait "$job" || rc=1; done
[ "$rc" = 0 ] || fail "a DEL failed: $(cat "$SVC_T"/*.del)"
[ "$(endpoints | jq length)" = 0 ] || fail "DELs left endpoints: $(endpoints)"
[ "$(representors)" = 0 ] || fail "DELs left $(representors) representors in the SoC"
for p in "${pods[@]}"; do
  ! ip -n "$p" link show eth0 >/dev/null 2>&1 || fail "DEL left eth0 in $p"
done
echo "nothing left over"
