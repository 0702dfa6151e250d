#!/usr/bin/env bash
# A libvirt user drives a VM whose disk is offcore's vhost-user-blk back end:
# `offcore vm blk-serve` runs in a software DPU's SoC domain, Debian's
# libvirtd (started here, private config and state, see docs/VM.md
# "libvirt") runs in the node's host domain, and `virsh define/start` boots
# the domain XML of docs/VM.md. The guest writes and reads /dev/vda; the
# back end's file must hold what the guest wrote.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
if ! command -v libvirtd >/dev/null || ! command -v virsh >/dev/null; then
  fail "libvirtd/virsh missing: run scripts/setup.sh (libvirt-daemon-system libvirt-clients)"
fi
N=vl$ID
DOM=oc-lv-$ID
netns_add "h$N"
node_up "$N" --host-netns "h$N" >/dev/null
guest_kit

sock=$GUEST_DIR/lv.sock img=$GUEST_DIR/lv.raw
truncate -s 128M "$img"
in_cgroup() { grep -q "cpuacct.*/offcore/$N/$2\$" "/proc/$1/cgroup"; }

step "offcore vm blk-serve in the SoC domain"
"$OFFCORE" dpu exec --name "$N" --domain soc -- \
  "$OFFCORE" vm blk-serve --socket "$sock" --file "$img" >"$GUEST_DIR/blk-serve.log" 2>&1 &
BS=$!
cleanup "kill $BS; wait $BS"
for _ in $(seq 100); do [ -S "$sock" ] && break; alive "$BS" || break; sleep 0.05; done
[ -S "$sock" ] || fail "blk-serve did not listen on $sock: $(tail -3 "$GUEST_DIR/blk-serve.log")"

step "a private libvirtd in the host domain"
# Its own /etc/libvirt, /var/lib/libvirt, /var/log/libvirt,
# /var/cache/libvirt and /run/libvirt, bound in a private mount namespace,
# so nothing of the machine's libvirt state is used or changed; the client
# socket is in $LV/sock.
LV=$GUEST_DIR/libvirt
mkdir -p "$LV"/{etc/qemu,lib,log,cache,run,sock}
cp /etc/libvirt/*.conf "$LV/etc/"
# QEMU as root without security labels, cgroups, a /dev namespace or
# virtlogd: see docs/VM.md "libvirt" for why each line is there.
cat >"$LV/etc/qemu.conf" <<'EOF'
user = "root"
group = "root"
dynamic_ownership = 0
remember_owner = 0
security_driver = "none"
cgroup_controllers = [ ]
namespaces = [ ]
stdio_handler = "file"
EOF
cat >"$LV/etc/libvirtd.conf" <<EOF
unix_sock_dir = "$LV/sock"
unix_sock_group = "root"
unix_sock_rw_perms = "0700"
auth_unix_rw = "none"
log_outputs = "3:stderr"
EOF
cat >"$LV/start.sh" <<EOF
set -e
mount -t tmpfs tmpfs /run
mkdir /run/libvirt
mount --bind $LV/run /run/libvirt
mount --bind $LV/etc /etc/libvirt
mount --bind $LV/lib /var/lib/libvirt
mount --bind $LV/log /var/log/libvirt
mount --bind $LV/cache /var/cache/libvirt
exec libvirtd -f /etc/libvirt/libvirtd.conf
EOF
# unshare and sh exec: $! is libvirtd's PID.
"$OFFCORE" dpu exec --name "$N" --domain host -- \
  unshare -m --propagation private sh "$LV/start.sh" >"$LV/libvirtd.log" 2>&1 &
LVD=$!
cleanup "kill $LVD; wait $LVD"
LV_URI="qemu:///system?socket=$LV/sock/libvirt-sock"
virsh() { command virsh -q -c "$LV_URI" "$@"; }
for _ in $(seq 100); do virsh version >/dev/null 2>&1 && break; alive "$LVD" || break; sleep 0.1; done
virsh version >/dev/null 2>&1 || fail "libvirtd did not answer on $LV/sock: $(tail -5 "$LV/libvirtd.log")"
in_cgroup "$LVD" host || fail "libvirtd is not in the host cgroup: $(grep cpuacct "/proc/$LVD/cgroup")"

step "virsh define + start: the guest writes 32 MiB to /dev/vda and reads it back"
_guest_initrd g 0 <<'G'
#!/bin/sh
set -e
dd if=/dev/urandom of=/tmp/r bs=1M count=32 2>/dev/null
echo "SHA=$(sha256sum /tmp/r | cut -d' ' -f1)"
dd if=/tmp/r of=/dev/vda bs=1M conv=fsync 2>/dev/null
rm /tmp/r
echo 3 >/proc/sys/vm/drop_caches
echo "READ=$(dd if=/dev/vda bs=1M count=32 2>/dev/null | sha256sum | cut -d' ' -f1)"
G
log=$GUEST_DIR/g.log
# The template of docs/VM.md "libvirt", with this test's paths.
cat >"$LV/$DOM.xml" <<EOF
<domain type='qemu'>
  <name>$DOM</name>
  <memory unit='MiB'>256</memory>
  <vcpu>1</vcpu>
  <memoryBacking>
    <source type='memfd'/>
    <access mode='shared'/>
  </memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>$GUEST_KIT/kernel</kernel>
    <initrd>$GUEST_DIR/g.initrd</initrd>
    <cmdline>$GUEST_CMDLINE</cmdline>
  </os>
  <features>
    <acpi/>
  </features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>destroy</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='vhostuser' device='disk'>
      <driver name='qemu' type='raw'/>
      <source type='unix' path='$sock'>
        <reconnect enabled='yes' timeout='1'/>
      </source>
      <target dev='vda' bus='virtio'/>
    </disk>
    <serial type='file'>
      <source path='$log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
</domain>
EOF
virsh define "$LV/$DOM.xml" >/dev/null || fail "virsh define refused $LV/$DOM.xml"
cleanup "virsh undefine $DOM"
# Backstop if libvirtd is gone: QEMU by the PID libvirt recorded.
cleanup "kill \$(cat $LV/run/qemu/$DOM.pid)"
cleanup "virsh destroy $DOM"
# With <reconnect>, a socket QEMU cannot connect to makes `virsh start` hang
# rather than fail (docs/VM.md): bound it.
timeout 60 virsh -q -c "$LV_URI" start "$DOM" >/dev/null ||
  fail "virsh start $DOM failed or hung: $(tail -3 "$LV/log/qemu/$DOM.log")"
QPID=$(cat "$LV/run/qemu/$DOM.pid")
in_cgroup "$QPID" host || fail "libvirt's QEMU is not in the host cgroup: $(grep cpuacct "/proc/$QPID/cgroup")"
grep -q 'vhost-user-blk-pci' "/proc/$QPID/cmdline" ||
  fail "libvirt did not give QEMU a vhost-user-blk-pci device: $(tr '\0' ' ' <"/proc/$QPID/cmdline")"

# The guest powers off after its script (ACPI); on_poweroff=destroy ends
# the domain.
state=
for _ in $(seq $((GUEST_TIMEOUT * 2))); do
  state=$(virsh domstate "$DOM" 2>/dev/null) || true
  [ "$state" = "shut off" ] && break
  sleep 0.5
done
grep -q '^KIT-RESULT rc=0' "$log" || {
  tail -20 "$log" >&2
  fail "the guest's script did not succeed (domain $state; QEMU log: $(tail -3 "$LV/log/qemu/$DOM.log"))"
}
[ "$state" = "shut off" ] || fail "the domain is '$state' after the guest powered off, expected 'shut off'"

sha=$(guest_value g SHA) r=$(guest_value g READ)
[ -n "$sha" ] || fail "the guest printed no SHA"
[ "$r" = "$sha" ] || fail "the guest read sha256 $r from /dev/vda, it wrote $sha"
h=$(head -c 32M "$img" | sha256sum | cut -d' ' -f1)
[ "$h" = "$sha" ] || fail "the back end's file holds sha256 $h, the guest wrote $sha"
echo "guest under libvirt wrote and read back 32 MiB, sha256 $sha; the back end's file matches"
alive "$BS" || fail "blk-serve died: $(tail -3 "$GUEST_DIR/blk-serve.log")"

step "virsh undefine; libvirtd stops"
virsh undefine "$DOM" >/dev/null || fail "virsh undefine $DOM failed"
[ -z "$(virsh list --all --name)" ] || fail "domains left after undefine: $(virsh list --all --name)"
kill "$LVD"
wait "$LVD" 2>/dev/null || true
alive "$QPID" && fail "QEMU $QPID outlived its domain"
echo "ok"
