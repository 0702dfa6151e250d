#!/usr/bin/env bash
# offcore vm create/start/list/console/stop/delete: the SoC owns the VM. Its
# disk back end runs as an agent service in the SoC domain, QEMU as one that
# moved itself into the host domain (cgroup and root network namespace). The
# data the guest writes survives a stop and a second start; a stop of a guest
# that ignores ACPI still ends QEMU; bad input is refused with one line.
# With OC_CLUSTER_STORE=etcd (vm_lifecycle_etcd_test.sh) the VM's record is
# a key in a 3-member etcd on fabric hosts, read by `vm qemu-exec` from the
# node's SoC, and nothing is written under the cluster directory.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
N=vl$ID
VM=lc$ID
STORE=${OC_CLUSTER_STORE:-dir}
if [ "$STORE" = etcd ]; then
  T=$(mktemp -d /tmp/oc-vme-XXXX); cleanup "rm -rf $T"
  export OFFCORE_CONFIG=$T/config.json
  echo "{\"cluster_dir\": \"$T/cluster\"}" > "$OFFCORE_CONFIG"
  etcd_cluster_up "$T/etcd" "ea$ID" "eb$ID" "ec$ID"
  printf '{"cluster_dir": "%s/cluster", "cluster_store": "%s"}\n' "$T" "$ETCD_URL" > "$OFFCORE_CONFIG"
fi
# $N's host side is the root namespace: its SoC is the CLI's way to etcd.
node_up "$N" >/dev/null
guest_kit
disk=$GUEST_DIR/disk.raw
truncate -s 128M "$disk"
cleanup "\"$OFFCORE\" vm delete $VM --force"

# The guest writes a marker on its first boot and finds it on the second,
# then idles (busybox has no acpid: `vm stop` must fall back to quit).
_guest_initrd "$VM" 0 <<'G'
#!/bin/sh
m=$(dd if=/dev/vda bs=16 count=1 2>/dev/null | tr -d '\0')
if [ "$m" = "offcore-marker-1" ]; then
  echo "BOOT=second"
else
  printf 'offcore-marker-1' | dd of=/dev/vda bs=16 count=1 conv=fsync 2>/dev/null
  echo "BOOT=first"
fi
exec sleep 100000
G
initrd=$GUEST_DIR/$VM.initrd

step "bad input is refused before anything starts"
expect_fail "must be 1-32 of" oc vm create "Bad_Name" --node "$N" --disk "$disk"
expect_fail "multiple of 2M" oc vm create "$VM" --node "$N" --disk "$disk" --mem 99M
expect_fail "VPC/SUBNET" oc vm create "$VM" --node "$N" --disk "$disk" --net novpc
expect_fail "no VM named" oc vm start "nosuch$ID"

step "create and start: back end in the SoC, QEMU in the host domain"
oc vm create "$VM" --node "$N" --cpus 1 --mem 256M --disk "$disk" --kernel "$GUEST_KIT/kernel" --initrd "$initrd" \
  --append "console=ttyS0 panic=-1 quiet"
expect_fail "exists" oc vm create "$VM" --node "$N" --disk "$disk"
if [ "$STORE" = etcd ]; then
  [ "$(etcdctl_c get --print-value-only "/offcore/vms/v1/records/$VM" | jq -r .node)" = "$N" ] ||
    fail "no VM record in etcd: $(etcdctl_c get --prefix --keys-only /offcore/vms/)"
  [ ! -e "$T/cluster/vms" ] || fail "the VM record went to the cluster directory too"
fi
oc vm start "$VM"
expect_fail "already running" oc vm start "$VM"
console=/run/offcore/$N/vms/$VM/console.log
for _ in $(seq 600); do grep -q "^BOOT=" "$console" 2>/dev/null && break; sleep 0.1; done
grep -q "^BOOT=first" "$console" || fail "the guest did not boot from the SoC's disk: $(tail -5 "$console")"

svc_pid() { oc dpu service list --name "$N" --json | jq -r --arg s "$1" '.[] | select(.name == $s) | .pid'; }
qpid=$(svc_pid "vm-$VM-qemu") bpid=$(svc_pid "vm-$VM-blk")
[ -n "$qpid" ] && [ "$qpid" != null ] || fail "no QEMU service"
grep -q "/offcore/$N/host\$" "/proc/$qpid/cgroup" || fail "QEMU is not in the host cgroup: $(cat /proc/$qpid/cgroup)"
grep -q "/offcore/$N/soc\$" "/proc/$bpid/cgroup" || fail "the back end is not in the SoC cgroup"
[ "$(readlink /proc/$qpid/ns/net)" = "$(readlink /proc/$$/ns/net)" ] || fail "QEMU is not in the root network namespace"
[ "$(readlink /proc/$bpid/ns/net)" = "$(readlink /proc/$$/ns/net)" ] && fail "the back end left the SoC namespace"
tr '\0' ' ' <"/proc/$qpid/cmdline" | grep -q "vhost-user-blk-pci" || fail "QEMU has no vhost-user disk"
tr '\0' ' ' <"/proc/$qpid/cmdline" | grep -q "if=virtio" && fail "QEMU serves a disk itself"
state=$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .state')
[ "$state" = running ] || fail "vm list says $state"
oc vm list | grep -q "^$VM " || fail "vm list has no row for $VM"
# dpu status charges each service to the domain its process is in.
qdom=$(oc dpu service list --name "$N" --json | jq -r --arg s "vm-$VM-qemu" '.[] | select(.name == $s) | .domain')
bdom=$(oc dpu service list --name "$N" --json | jq -r --arg s "vm-$VM-blk" '.[] | select(.name == $s) | .domain')
[ "$qdom/$bdom" = host/soc ] || fail "services charged to $qdom/$bdom, not host/soc"
split=$(oc dpu status --name "$N" | grep "^vm $VM: ") || fail "dpu status has no cpu line for $VM"
host_s=$(echo "$split" | sed -E 's/.*host domain ([0-9.]+) cpu-s.*/\1/')
awk -v h="$host_s" 'BEGIN { exit !(h > 0) }' || fail "the guest's vCPUs were charged nothing: $split"

step "the console attaches (one client at a time)"
rc=0; timeout 2 "$OFFCORE" vm console "$VM" </dev/null >/dev/null 2>&1 || rc=$?
[ "$rc" = 0 ] || [ "$rc" = 124 ] || fail "vm console failed with $rc"

step "stop: ACPI is ignored by this guest, so QEMU is stopped after --timeout"
out=$(oc vm stop "$VM" --timeout 2)
echo "$out"
[[ "$out" == *"stopped VM $VM"* ]] || fail "vm stop said: $out"
alive "$qpid" && fail "QEMU still runs after vm stop"
alive "$bpid" && fail "the back end still runs after vm stop"
state=$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .state')
[ "$state" = stopped ] || fail "vm list says $state after stop"

step "a second start finds the data of the first"
: >"$console"
oc vm start "$VM"
for _ in $(seq 600); do grep -q "^BOOT=" "$console" 2>/dev/null && break; sleep 0.1; done
grep -q "^BOOT=second" "$console" || fail "the second boot did not find the marker: $(tail -5 "$console")"

step "delete refuses a running VM, --force stops it"
expect_fail "vm stop" oc vm delete "$VM"
oc vm delete "$VM" --force
expect_fail "no VM named" oc vm start "$VM"
if [ "$STORE" = etcd ]; then
  [ -z "$(etcdctl_c get --prefix --keys-only /offcore/vms/ | sed '/^$/d')" ] || fail "the VM's record is left in etcd"
fi
[ -e "/run/offcore/$N/vms/$VM" ] && fail "the VM's run directory is left"
[ -e "$disk" ] || fail "delete removed the disk"
echo "VM lifecycle ok"
