#!/usr/bin/env bash
# A VF pair carries packets from the pod namespace to the representor side.
source "$(dirname "$0")/lib.sh"
N=vf$ID
P=pod$ID
netns_add "h$N"
netns_add "$P"
node_up "$N" --host-netns "h$N"

step "vf add puts the VF in the pod and the representor in the SoC"
vf=$(oc dpu vf add --name "$N" --netns "$P" --ip 10.200.0.5/24 --mac 02:00:00:aa:bb:01 --json)
rep=$(jq -r .representor <<<"$vf")
[ "$rep" = pf0vf0 ] || fail "first representor is $rep"
ip -n "$P" -o link show eth0 | grep -q "02:00:00:aa:bb:01" || fail "VF MAC"
ip -n "oc-$N-soc" -o link show "$rep" | grep -q "state UP" || fail "representor not up in the SoC"

step "pod -> SoC ping crosses the representor"
rx0=$(ip -n "oc-$N-soc" -j -s link show "$rep" | jq -r '.[0].stats64.rx.packets')
soc_ip=$(status_field "$N" .network.uplink.ip); soc_ip=${soc_ip%/*}
ip netns exec "$P" ping -c 3 -i 0.2 -W 1 "$soc_ip"
rx1=$(ip -n "oc-$N-soc" -j -s link show "$rep" | jq -r '.[0].stats64.rx.packets')
assert_cmp $(( rx1 - rx0 )) ">=" 3 "packets received on the representor"

step "a second VF gets the next stable representor name; duplicates are refused"
oc dpu vf add --name "$N" --netns "$P" --ifname eth1 >/dev/null
oc dpu vf list --name "$N" --json | jq -e '[.[].representor] == ["pf0vf0","pf0vf1"]' >/dev/null || fail "vf list"
expect_fail "already has VF eth0" oc dpu vf add --name "$N" --netns "$P"
expect_fail "does not exist" oc dpu vf add --name "$N" --netns "nope$ID"
expect_fail "bad address" oc dpu vf add --name "$N" --netns "$P" --ifname eth2 --ip 10.0.0.300/24
ip -n "$P" link show eth2 >/dev/null 2>&1 && fail "a refused VF left eth2 behind"
! ip -n "oc-$N-soc" link show pf0vf2 >/dev/null 2>&1 || fail "a refused VF left pf0vf2 behind"

step "vf del removes both ends; the index is reused"
oc dpu vf del --name "$N" --representor pf0vf0
! ip -n "$P" link show eth0 >/dev/null 2>&1 || fail "eth0 still in the pod"
oc dpu vf add --name "$N" --netns "$P" --ip 10.200.0.5/24 --json | jq -e '.representor == "pf0vf0"' >/dev/null \
  || fail "index not reused"
oc dpu vf del --name "$N" --netns "$P" --ifname eth1
expect_fail "no VF" oc dpu vf del --name "$N" --representor pf0vf9

step "down removes the VFs with the node"
oc dpu down --name "$N"
! ip -n "$P" link show eth0 >/dev/null 2>&1 || fail "VF survived dpu down"
