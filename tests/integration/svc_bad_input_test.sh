#!/usr/bin/env bash
# Bad Service YAML gets an error naming file, line and field, and nothing
# of the file is applied; bad CNI stdin gets a CNI error JSON with the
# spec's code, and no address is allocated. Needs no node: validation
# happens before anything is asked of an agent.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"

cat > "$SVC_T/good.yaml" <<'EOF2'
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: bad-vpc}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: bad-sub}
spec: {vpc: bad-vpc, cidr: 10.64.0.0/24}
EOF2
oc svc apply -f "$SVC_T/good.yaml"
state_before=$(jq -S . "$SVC_T/cluster/state.json")

step "a multi-document file with one bad port applies nothing"
cat > "$SVC_T/bad.yaml" <<'EOF2'
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: ok-backend, labels: {app: x}}
spec: {kind: ip, vpc: bad-vpc, ip: 10.64.0.50}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: broken}
spec:
  type: ClusterIP
  vpc: bad-vpc
  ports:
  - {port: 70000, targetPort: 80}
  selector: {app: x}
EOF2
rc=0; err=$(oc svc apply -f "$SVC_T/bad.yaml" 2>&1) || rc=$?
echo "$err"
[ "$rc" -ne 0 ] || fail "a bad port was accepted"
[[ "$err" == *"bad.yaml:"* && "$err" == *"ports[0].port"* ]] || fail "the error does not name the file, line and field: $err"
echo "$err" | grep -Eq 'bad\.yaml:[0-9]+:' || fail "no line number in: $err"
[ "$(jq -S . "$SVC_T/cluster/state.json")" = "$state_before" ] || fail "the store changed although the apply failed"
! oc svc get Backend ok-backend >/dev/null 2>&1 || fail "the good document of a failed file was applied"

step "malformed YAML, an unknown field and a dangling reference"
printf 'kind: Service\nmetadata: {name: x\n' > "$SVC_T/syntax.yaml"
expect_fail "syntax.yaml:" oc svc apply -f "$SVC_T/syntax.yaml"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: s}\nspec: {vpc: bad-vpc, cidr: 10.64.1.0/24, colour: red}\n' > "$SVC_T/field.yaml"
rc=0; err=$(oc svc apply -f "$SVC_T/field.yaml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && [[ "$err" == *"field.yaml:"*"colour"* ]] || fail "unknown field: $err"
printf 'apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: s}\nspec: {vpc: nowhere, cidr: 10.64.1.0/24}\n' > "$SVC_T/ref.yaml"
rc=0; err=$(oc svc apply -f "$SVC_T/ref.yaml" 2>&1) || rc=$?
[ "$rc" -ne 0 ] && [[ "$err" == *"ref.yaml:"*"spec.vpc"* ]] || fail "dangling VPC: $err"
[ "$(jq -S . "$SVC_T/cluster/state.json")" = "$state_before" ] || fail "the store changed"

step "bad CNI stdin: error JSON with the spec's codes, nothing allocated"
netns_add "bp$ID"
cni_raw() { CNI_COMMAND=ADD CNI_CONTAINERID=bp$ID CNI_NETNS=/var/run/netns/bp$ID CNI_IFNAME=eth0 CNI_PATH=/x "$CNI"; }
out=$(printf 'not json' | cni_raw) && fail "garbage stdin was accepted"
echo "$out" | jq -e '.code == 6 and (.msg | length > 0)' >/dev/null || fail "garbage stdin: $out"
out=$(printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","subnet":"bad-sub"}' | cni_raw) && fail "no node accepted"
echo "$out" | jq -e '.code == 7 and (.msg | test("node"))' >/dev/null || fail "missing node: $out"
out=$(printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","node":"n","subnet":"bad-sub","mtu":"big"}' | cni_raw) && fail "string mtu accepted"
echo "$out" | jq -e '.code == 7 and (.msg | test("mtu"))' >/dev/null || fail "string mtu: $out"
out=$(printf '{"cniVersion":"9.9.9","name":"t","type":"offcore-cni","node":"n","subnet":"bad-sub"}' | cni_raw) && fail "version 9.9.9 accepted"
echo "$out" | jq -e '.code == 1' >/dev/null || fail "unsupported version: $out"
out=$(printf '{"cniVersion":"1.0.0","name":"t","type":"offcore-cni","node":"n","subnet":"bad-sub"}' | CNI_COMMAND=ADD CNI_NETNS=/var/run/netns/bp$ID CNI_IFNAME=eth0 CNI_PATH=/x "$CNI") && fail "no container id accepted"
echo "$out" | jq -e '.code == 4' >/dev/null || fail "missing CNI_CONTAINERID: $out"
[ "$(jq '.endpoints | length' "$SVC_T/cluster/state.json")" = 0 ] || fail "an address was allocated by a failed ADD"
