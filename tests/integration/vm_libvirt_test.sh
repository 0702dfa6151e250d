#!/usr/bin/env bash
# A libvirt user drives a VM whose disk and NIC are offcore's vhost-user back
# ends: `offcore vm blk-serve` and `offcore vm net-serve` (on a tap with an
# address) run in a software DPU's SoC domain, Debian's libvirtd (started
# here, private config and state, see docs/VM.md "libvirt") runs in the
# node's host domain, and `virsh define/start` boots the domain XML of
# docs/VM.md. The guest writes and reads /dev/vda; the back end's file must
# hold what the guest wrote. The guest's eth0 (set up by the kit's /init from
# offcore.ip/offcore.gw in the domain's <cmdline>) must have the domain's
# MAC, ping the tap's address and fetch 4 MiB over TCP from a server in the
# SoC, unchanged.
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

step "offcore vm net-serve on a tap in the SoC domain"
# The tap is the VM's representor in the SoC netns; its address is the
# guest's gateway.
SOC_NS=oc-$N-soc tap=vlt$ID nsock=$GUEST_DIR/lv-net.sock
GW=10.204.0.1 VM_IP=10.204.0.2 MAC=52:54:00:4f:43:4c PORT=5000
ip -n "$SOC_NS" tuntap add dev "$tap" mode tap
cleanup "ip -n $SOC_NS link del $tap"
ip -n "$SOC_NS" addr add "$GW/24" dev "$tap"
ip -n "$SOC_NS" link set "$tap" up
"$OFFCORE" dpu exec --name "$N" --domain soc -- \
  "$OFFCORE" vm net-serve --socket "$nsock" --tap "$tap" >"$GUEST_DIR/net-serve.log" 2>&1 &
NS_PID=$!
cleanup "kill $NS_PID; wait $NS_PID"
for _ in $(seq 100); do [ -S "$nsock" ] && break; alive "$NS_PID" || break; sleep 0.05; done
[ -S "$nsock" ] || fail "net-serve did not listen on $nsock: $(tail -3 "$GUEST_DIR/net-serve.log")"
in_cgroup "$NS_PID" soc || fail "net-serve is not in the SoC cgroup: $(grep cpuacct "/proc/$NS_PID/cgroup")"
# The SoC's firewall drops new connections to its own addresses (ICMP
# passes), so the SoC is the TCP client: from the SoC, fetch what the guest
# serves on VM_IP:PORT (the guest's tx), then send a file to VM_IP:PORT+1
# (the guest's rx). Connects are retried until the guest listens.
head -c $((4 << 20)) /dev/urandom >"$GUEST_DIR/net.to-guest"
TO_GUEST=$(sha256sum "$GUEST_DIR/net.to-guest" | cut -d' ' -f1)
cat >"$GUEST_DIR/client.py" <<'EOF'
import socket, sys, time
addr, port, out, src = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
def connect(port):
    deadline = time.time() + 300
    while True:
        try:
            c = socket.create_connection((addr, port), timeout=5)
            c.settimeout(120)
            return c
        except OSError:
            if time.time() > deadline:
                raise
            time.sleep(0.5)
c = connect(port)
with open(out, "wb") as f:
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        f.write(b)
c.close()
c = connect(port + 1)
with open(src, "rb") as f:
    c.sendall(f.read())
c.close()
EOF
"$OFFCORE" dpu exec --name "$N" --domain soc -- /usr/bin/python3 "$GUEST_DIR/client.py" \
  "$VM_IP" "$PORT" "$GUEST_DIR/net.from-guest" "$GUEST_DIR/net.to-guest" >"$GUEST_DIR/client.log" 2>&1 &
CLI=$!
cleanup "kill $CLI"

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

step "virsh define + start: the guest writes 32 MiB to /dev/vda and reads it back, moves 4 MiB each way over eth0"
_guest_initrd g 0 <<'G'
#!/bin/sh
set -e
# eth0 is set up by the kit's /init from offcore.ip/offcore.gw.
[ -n "$OC_IP" ] && [ -n "$OC_GW" ] || { echo "no offcore.ip/offcore.gw on the command line"; exit 2; }
echo "MAC=$(cat /sys/class/net/eth0/address)"
ping -c 3 -W 5 "$OC_GW" >/tmp/ping && echo PING=ok || { cat /tmp/ping; echo PING=failed; }
# The SoC fetches /tmp/out from port 5000, then sends 4 MiB to port 5001.
head -c 4194304 /dev/urandom >/tmp/out
echo "NET_OUT=$(sha256sum /tmp/out | cut -d' ' -f1)"
nc -l -p 5000 </tmp/out
nc -l -p 5001 >/tmp/in
echo "NET_IN_SIZE=$(stat -c %s /tmp/in)"
echo "NET_IN=$(sha256sum /tmp/in | cut -d' ' -f1)"
rm /tmp/out /tmp/in
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
<domain type='qemu' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
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
    <cmdline>$GUEST_CMDLINE offcore.ip=$VM_IP/32 offcore.gw=$GW</cmdline>
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
    <interface type='vhostuser'>
      <mac address='$MAC'/>
      <source type='unix' path='$nsock' mode='client'>
        <reconnect enabled='yes' timeout='1'/>
      </source>
      <model type='virtio'/>
      <alias name='ua-net0'/>
    </interface>
    <serial type='file'>
      <source path='$log'/>
      <target port='0'/>
    </serial>
    <memballoon model='none'/>
  </devices>
  <!-- vectors=0: QEMU 7.2's vhost-user-net crashes with MSI-X -->
  <qemu:override>
    <qemu:device alias='ua-net0'>
      <qemu:frontend>
        <qemu:property name='vectors' type='unsigned' value='0'/>
      </qemu:frontend>
    </qemu:device>
  </qemu:override>
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
grep -q '"driver":"virtio-net-pci".*"vectors":0' "/proc/$QPID/cmdline" ||
  fail "libvirt did not give QEMU a virtio-net-pci device with vectors=0: $(tr '\0' ' ' <"/proc/$QPID/cmdline")"

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

[ "$(guest_value g MAC)" = "$MAC" ] || fail "the guest's eth0 has MAC $(guest_value g MAC), the domain gave $MAC"
[ "$(guest_value g PING)" = ok ] || fail "the guest could not ping the tap's address $GW"
wait "$CLI" || fail "the TCP client in the SoC failed: $(tail -3 "$GUEST_DIR/client.log")"
out=$(guest_value g NET_OUT) got=$(sha256sum "$GUEST_DIR/net.from-guest" | cut -d' ' -f1)
[ -n "$out" ] && [ "$got" = "$out" ] || fail "the SoC fetched sha256 $got from the guest, the guest sent ${out:-nothing}"
[ "$(guest_value g NET_IN_SIZE)" = $((4 << 20)) ] || fail "the guest got $(guest_value g NET_IN_SIZE) bytes over TCP, expected $((4 << 20))"
[ "$(guest_value g NET_IN)" = "$TO_GUEST" ] || fail "the bytes the SoC sent to the guest changed (guest: sha256 $(guest_value g NET_IN), sent $TO_GUEST)"
echo "guest under libvirt (MAC $MAC) pinged $GW and moved 4 MiB each way over TCP through vhost-user-net, sha256 intact"
alive "$NS_PID" || fail "net-serve died: $(tail -3 "$GUEST_DIR/net-serve.log")"

step "virsh undefine; libvirtd stops"
virsh undefine "$DOM" >/dev/null || fail "virsh undefine $DOM failed"
[ -z "$(virsh list --all --name)" ] || fail "domains left after undefine: $(virsh list --all --name)"
kill "$LVD"
wait "$LVD" 2>/dev/null || true
alive "$QPID" && fail "QEMU $QPID outlived its domain"
echo "ok"
