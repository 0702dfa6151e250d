#!/usr/bin/env bash
# A VM's NIC in a VPC (issue 13, test 3): the node's agent gives the VM an
# address in a VPC subnet and a persistent tap in the SoC as its
# representor, attached to the same BPF dataplane as the pods' VFs. The
# guest (configured from offcore.ip/gw/mtu on its kernel command line)
#  - pings a pod of the subnet and fetches from it over TCP, the SoC
#    answering its ARP for the gateway;
#  - serves HTTP as a Backend of kind vm behind a ClusterIP Service, which a
#    pod reaches;
#  - stops serving: the NetworkProbe (tcp, from the SoC through the tap)
#    marks the backend unhealthy.
# `vm delete` gives the address back and removes the tap.
#
# Two ways to run the NIC (OFFCORE_VM_NET picks one; default: vhost-user when
# this build has `offcore vm net-serve`, else tap):
#  vhost-user  the real path: `offcore vm create --net VPC/SUBNET` + `vm start`
#              (agent service vm-NAME-net = `vm net-serve` on the tap, QEMU
#              in the host domain with a vhost-user virtio-net)
#  tap         the agent's /v1/net/vm API directly, and a guest whose QEMU
#              runs in the SoC with its own tap netdev on the same tap
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/svc_lib.sh"
source "$(dirname "$0")/lib_guest.sh"
N=vn$ID
VM=vnet$ID
POD=vp$ID
API=/run/offcore/$N/api.sock
MODE=${OFFCORE_VM_NET:-}
if [ -z "$MODE" ]; then
  if "$OFFCORE" vm --help | grep -q "^ *net-serve "; then MODE=vhost-user; else MODE=tap; fi
fi
echo "NIC back end: $MODE"
node_up "$N" >/dev/null
guest_kit

step "a VPC, a subnet, a pod serving HTTP"
cat >"$SVC_T/net.yaml" <<EOF
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: vpcvm}
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: snvm}
spec: {vpc: vpcvm, cidr: 10.63.1.0/24}
EOF
oc svc apply -f "$SVC_T/net.yaml"
pod_add "$N" "$POD" snvm vpcvm
pod_ip=$POD_IP
serve "$POD" 8080
# The test steers the guest through a file the pod serves on 8081.
mkdir -p "$SVC_T/ctl"
echo wait >"$SVC_T/ctl/ctl"
ip netns exec "$POD" python3 -m http.server 8081 --bind 0.0.0.0 --directory "$SVC_T/ctl" >/dev/null 2>&1 &
ctl_pid=$!
cleanup "kill $ctl_pid"

# The guest: eth0 from the kernel command line, ping + GET the pod, then
# serve "vm-hello" on 9000 until the test says stop, and end when it says end.
sed "s/@POD@/$pod_ip/g" <<'G' | _guest_initrd "$VM" 0
#!/bin/sh
# eth0 is set up by the kit's /init from offcore.ip/gw/mtu.
echo "CFG=$OC_IP $OC_GW $OC_MTU"
# HTTP/1.0 over busybox nc (the kit's static busybox wget crashes looking up
# the "http" service without NSS); prints the body.
get() { printf 'GET %s HTTP/1.0\r\n\r\n' "$3" | nc -w 3 "$1" "$2" 2>/dev/null | tr -d '\r' | sed '1,/^$/d'; }
[ -n "$OC_IP" ] && [ -n "$OC_GW" ] || { echo "no offcore.ip/offcore.gw on the command line"; exit 2; }
if ping -c 3 -W 3 @POD@ >/dev/null; then echo PING=ok; else echo PING=fail; fi
echo "GET=$(get @POD@ 8080 /)"
mkdir -p /www && echo vm-hello >/www/index.html
httpd -f -p 9000 -h /www &
hp=$!
echo LISTENING=1
i=0
while [ $i -lt 600 ]; do
  [ "$(get @POD@ 8081 /ctl)" = stop ] && break
  sleep 0.5; i=$((i + 1))
done
kill $hp
echo STOPPED=1
while [ $i -lt 1200 ]; do
  [ "$(get @POD@ 8081 /ctl)" = end ] && break
  sleep 0.5; i=$((i + 1))
done
echo DONE=1
G
initrd=$GUEST_DIR/$VM.initrd

api() { curl -sS --unix-socket "$API" -X POST -d "$2" "http://offcore$1"; }

step "the VM and its NIC ($MODE)"
if [ "$MODE" = vhost-user ]; then
  disk=$GUEST_DIR/disk.raw
  truncate -s 64M "$disk"
  cleanup "\"$OFFCORE\" vm delete $VM --force"
  oc vm create "$VM" --node "$N" --mem 256M --disk "$disk" --kernel "$GUEST_KIT/kernel" --initrd "$initrd" \
    --append "console=ttyS0 panic=-1 quiet" --net vpcvm/snvm
  oc vm start "$VM"
  rec=$(oc vm list --json | jq -c --arg v "$VM" '.[] | select(.name == $v)')
  vm_ip=$(echo "$rec" | jq -r .net_ip | cut -d/ -f1)
  vm_mac=$(echo "$rec" | jq -r .net_mac)
  log=/run/offcore/$N/vms/$VM/console.log
  oc dpu service list --name "$N" --json | jq -e --arg s "vm-$VM-net" '.[] | select(.name == $s and .state == "running")' \
    >/dev/null || fail "no running vm-$VM-net service: $(oc dpu service list --name "$N")"
  qpid=$(oc dpu service list --name "$N" --json | jq -r --arg s "vm-$VM-qemu" '.[] | select(.name == $s) | .pid')
  tr '\0' ' ' <"/proc/$qpid/cmdline" | grep -q "vhost-user,id=net0" || fail "QEMU has no vhost-user NIC"
else
  cleanup "api /v1/net/vm/del '{\"vm\":\"$VM\"}'"
  nic=$(api /v1/net/vm/add "{\"vm\":\"$VM\",\"vpc\":\"vpcvm\",\"subnet\":\"snvm\"}")
  echo "$nic" | jq -e .tap >/dev/null || fail "NIC ADD: $nic"
  again=$(api /v1/net/vm/add "{\"vm\":\"$VM\",\"vpc\":\"vpcvm\",\"subnet\":\"snvm\"}")
  [ "$(echo "$again" | jq -c '[.ip,.mac,.tap]')" = "$(echo "$nic" | jq -c '[.ip,.mac,.tap]')" ] ||
    fail "a retried ADD changed the NIC: $nic vs $again"
  vm_ip=$(echo "$nic" | jq -r .ip)
  vm_mac=$(echo "$nic" | jq -r .mac)
  tap=$(echo "$nic" | jq -r .tap)
  GUEST_CMDLINE="console=ttyS0 panic=-1 quiet offcore.ip=$vm_ip/32 offcore.gw=$(echo "$nic" | jq -r .gateway) \
offcore.mtu=$(echo "$nic" | jq -r .mtu)"
  export GUEST_CMDLINE
  # guest_boot packs stdin as the script again: give it the same one.
  cp "$GUEST_DIR/$VM.layer/test.sh" "$SVC_T/guest.sh"
  guest_boot "$VM" --in-domain "$N" soc --tap "$tap" "$vm_mac" <"$SVC_T/guest.sh"
  log=$GUEST_DIR/$VM.log
fi
echo "VM $VM: $vm_ip $vm_mac"
[[ "$vm_ip" == 10.63.1.* ]] || fail "the VM's address $vm_ip is not in snvm (10.63.1.0/24)"
[ "$vm_ip" != "$pod_ip" ] || fail "the VM got the pod's address"
ep=$(oc svc list --kind Endpoint --json | jq -c --arg v "$VM" '.[] | select(.vm == $v)')
[ -n "$ep" ] || fail "no store endpoint for VM $VM: $(oc svc list --kind Endpoint)"
tap=$(echo "$ep" | jq -r .representor)
oc dpu exec --name "$N" --domain soc -- ip -d link show "$tap" | grep -q "tun type tap" ||
  fail "no tap $tap in the SoC"

value() { tr -d '\r' <"$log" 2>/dev/null | sed -n "s/^$1=//p" | tail -1; }
wait_value() {
  for _ in $(seq 1800); do [ -n "$(value "$1")" ] && return 0; sleep 0.1; done
  echo "--- guest console (tail):" >&2; tail -20 "$log" >&2
  fail "the guest never printed $1="
}

step "the guest pings the pod and fetches from it over TCP"
wait_value LISTENING
addrs=$(oc dpu exec --name "$N" --domain soc -- ip -o -4 addr show dev "$tap")
[[ "$addrs" == *" 169.254.1.1/32 "* ]] || echo "WARN: tap addresses: $addrs"
echo "guest: $(value CFG)"
[ "$(value PING)" = ok ] || fail "the guest could not ping the pod $pod_ip: $(tail -20 "$log")"
direct=$(get "$POD" "http://$vm_ip:9000/") || true
if [ "$(value GET)" != "$POD $vm_ip" ] || [ "$direct" != vm-hello ]; then
  echo "dataplane: $(curl -s --unix-socket "$API" http://offcore/v1/net/status | jq -c .dataplane)" >&2
  oc dpu exec --name "$N" --domain soc -- ethtool -k "$tap" 2>/dev/null | grep -E "checksum|segmentation" >&2 || true
  tail -5 "/run/offcore/$N/vm-$VM-net.log" >&2 || true
  tr -d '\r' <"$log" | tail -8 >&2
  if [ -n "${VM_NET_DEBUG:-}" ]; then
    oc dpu exec --name "$N" --domain soc -- timeout 12 tcpdump -nvvei "$tap" -c 6 tcp >&2 || true
    oc dpu exec --name "$N" --domain soc -- ip -s link show "$tap" >&2 || true
  fi
  fail "guest -> pod GET: '$(value GET)' (want '$POD $vm_ip'); pod -> guest: '$direct' (want vm-hello)"
fi
[[ "$addrs" == *" 169.254.1.1/32 "* ]] || fail "the tap does not carry the gateway address: $addrs"

step "a Backend of kind vm behind a ClusterIP Service, with a tcp probe"
cat >"$SVC_T/svc.yaml" <<EOF
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: vmb, labels: {app: vmweb}}
spec: {kind: vm, vpc: vpcvm, ip: $vm_ip, node: $N}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: vmsvc}
spec: {type: ClusterIP, vpc: vpcvm, clusterIP: 10.96.63.10, ports: [{port: 80, targetPort: 9000}], selector: {app: vmweb}}
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: vmprobe}
spec: {backend: vmb, type: tcp, port: 9000, intervalMs: 500, timeoutMs: 400, failureThreshold: 2, successThreshold: 1}
EOF
oc svc apply -f "$SVC_T/svc.yaml"
wait_programmed vmsvc
health() { oc svc get vmsvc --json | jq -r '.endpoints[] | select(.backend == "vmb" or .name == "vmb") | .health'; }
for _ in $(seq 100); do [ "$(health)" = healthy ] && break; sleep 0.1; done
[ "$(health)" = healthy ] || fail "the probe never saw the guest's server: $(oc svc get vmsvc --json)"
r=$(get "$POD" http://10.96.63.10/)
[ "$r" = vm-hello ] || fail "pod -> ClusterIP 10.96.63.10 -> VM: '$r'"

step "the guest stops listening: the probe marks the backend unhealthy"
echo stop >"$SVC_T/ctl/ctl"
wait_value STOPPED
for _ in $(seq 100); do [ "$(health)" = unhealthy ] && break; sleep 0.1; done
[ "$(health)" = unhealthy ] || fail "vmb is not unhealthy after its server stopped: $(oc svc get vmsvc --json)"
oc svc get vmsvc
! get "$POD" http://10.96.63.10/ >/dev/null || fail "the ClusterIP still answers with its only backend down"
echo end >"$SVC_T/ctl/ctl"
wait_value DONE

step "releasing the NIC gives the address back and removes the tap"
oc svc delete -f "$SVC_T/svc.yaml" >/dev/null 2>&1 || oc svc delete Service vmsvc >/dev/null 2>&1 || true
if [ "$MODE" = vhost-user ]; then
  oc vm delete "$VM" --force
else
  guest_kill "$VM"
  api /v1/net/vm/del "{\"vm\":\"$VM\"}" | jq -e .ok >/dev/null || fail "NIC DEL"
  api /v1/net/vm/del "{\"vm\":\"$VM\"}" | jq -e .ok >/dev/null || fail "a second NIC DEL must succeed too"
fi
oc svc list --kind Endpoint --json | jq -e --arg v "$VM" '[.[] | select(.vm == $v)] | length == 0' >/dev/null ||
  fail "the VM's endpoint is still in the store"
! oc dpu exec --name "$N" --domain soc -- ip link show "$tap" >/dev/null 2>&1 || fail "the tap $tap is still there"
echo "PASS ($MODE)"
