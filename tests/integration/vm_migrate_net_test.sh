#!/usr/bin/env bash
# offcore vm migrate with a NIC (issue 13 §4): a VM in a VPC subnet pings a
# pod on node A every 200 ms through its vhost-user-net NIC while it moves
# from node A to node B. After the switch its replies come from node B's
# SoC dataplane (the tap and vm-NAME-net now live there; the pod stays on
# A, so the flow crosses the fabric); the flow must go on, with at most a
# few pings lost around the downtime, and the address and MAC must be the
# same on both sides.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/lib_guest.sh"
A=na$ID B=nb$ID VM=mn$ID POD=mp$ID
node_up "$A" >/dev/null
netns_add "h$B"
node_up "$B" --host-netns "h$B" >/dev/null
guest_kit
disk=$GUEST_DIR/disk.raw
truncate -s 16M "$disk"
cleanup "\"$OFFCORE\" vm delete $VM --force"

step "a VPC subnet, a pod on node $A, a VM with a NIC in the same subnet"
cat >"$SVC_T/net.yaml" <<Y
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vpcmig}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: snmig}
spec: {vpc: vpcmig, cidr: 10.63.2.0/24}
Y
oc svc apply -f "$SVC_T/net.yaml"
pod_add "$A" "$POD" snmig vpcmig
pod_ip=$POD_IP

# The guest (eth0 set up by the kit's /init from the kernel command line)
# pings the pod until powered off; every reply is one console line with its
# sequence number.
sed "s/@POD@/$pod_ip/g" <<'G' | _guest_initrd "$VM" 0
#!/bin/sh
[ -n "$OC_IP" ] || { echo "no offcore.ip on the command line"; exit 2; }
echo "MAC=$(cat /sys/class/net/eth0/address)"
ping -i 0.2 -W 1 @POD@ | sed -n 's/.*seq=\([0-9]*\).*/PONG=\1/p'
G

oc vm create "$VM" --node "$A" --disk "$disk" --net vpcmig/snmig --kernel "$GUEST_KIT/kernel" \
  --initrd "$GUEST_DIR/$VM.initrd" --append "console=ttyS0 panic=-1 quiet" >/dev/null
oc vm start "$VM" >/dev/null
logA=/run/offcore/$A/vms/$VM/console.log logB=/run/offcore/$B/vms/$VM/console.log
pongs() { grep -c '^PONG=' "$1" 2>/dev/null || true; }
ip_before=$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .net_ip')
mac_guest=$(for _ in $(seq 900); do tr -d '\r' <"$logA" 2>/dev/null | sed -n 's/^MAC=//p' | head -1 | grep . && break; sleep 0.1; done)

step "the guest pings the pod from node $A"
for _ in $(seq 900); do [ "$(pongs "$logA")" -ge 10 ] && break; sleep 0.1; done
[ "$(pongs "$logA")" -ge 10 ] || fail "the guest does not reach the pod: $(tail -5 "$logA")"

step "migrate to node $B while the pings go on"
out=$(oc vm migrate "$VM" --to "$B" --json)
echo "$out"
down=$(echo "$out" | jq -r .downtime_ms)
[ "$down" -ge 0 ] 2>/dev/null || fail "no downtime reported: $out"
for _ in $(seq 600); do [ "$(pongs "$logB")" -ge 25 ] && break; sleep 0.1; done
after=$(pongs "$logB")
[ "$after" -ge 25 ] || fail "the flow did not survive the migration: $after replies on node $B ($(tail -3 "$logB"))"

step "same address and MAC on node $B; the source gave up its NIC"
ip_after=$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .net_ip')
[ -n "$ip_before" ] && [ "$ip_before" = "$ip_after" ] || fail "the address moved from $ip_before to $ip_after"
mac_rec=$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .net_mac')
[ -n "$mac_guest" ] && [ "$mac_guest" = "$mac_rec" ] || fail "the guest's MAC $mac_guest is not the record's $mac_rec"
[ -z "$(oc dpu service list --name "$A" --json | jq -r '.[].name' | grep "vm-$VM-")" ] ||
  fail "node $A still runs the VM's services"
oc dpu service list --name "$B" --json | jq -r '.[].name' | grep -qx "vm-$VM-net" || fail "node $B runs no vm-$VM-net"

# Sequence numbers seen on either side: the lost ones are the gap the
# switch made (busybox ping counts from 0; the log of A may end mid-line).
seen=$(cat "$logA" "$logB" | tr -d '\r' | sed -n 's/^PONG=\([0-9]*\)$/\1/p' | sort -n | uniq)
first=$(echo "$seen" | head -1) last=$(echo "$seen" | tail -1) got=$(echo "$seen" | wc -l)
lost=$((last - first + 1 - got))
[ "$got" -ge 35 ] || fail "only $got distinct replies: the sequence numbers were not read from the consoles"
echo "pings: $got answered of $((last - first + 1)) sent, $lost lost across a downtime of ${down} ms"
# 200 ms apart: 5 s of loss is 25 pings. The dataplane on node B learns the
# VM's endpoint when the store moves it, a little after QEMU resumes.
[ "$lost" -le 25 ] || fail "$lost pings lost across the migration"
echo "the flow survived the migration: $lost pings lost, downtime ${down} ms"
