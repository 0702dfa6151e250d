#!/usr/bin/env bash
# The vhost-user-blk back end runs in a software DPU's SoC domain and QEMU in
# its host domain: the guest's disk works across the two (the socket and the
# guest memory are shared, nothing else), and the back end's CPU is charged
# to the SoC, QEMU's to the host.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
N=vs$ID
netns_add "h$N"
node_up "$N" --host-netns "h$N" >/dev/null
guest_kit

sock=$GUEST_DIR/soc.sock disk=$GUEST_DIR/soc.raw
truncate -s 256M "$disk"
cpu() { status_field "$N" ".domains.$1.cpu_seconds"; }
in_cgroup() { grep -q "cpuacct.*/offcore/$N/$2\$" "/proc/$1/cgroup"; }
# utime + stime of a live process, in seconds.
proc_cpu() { awk -v hz="$(getconf CLK_TCK)" '{ print ($14 + $15) / hz }' "/proc/$1/stat"; }

step "offcore vm blk-serve in the SoC domain"
"$OFFCORE" dpu exec --name "$N" --domain soc -- \
  "$OFFCORE" vm blk-serve --socket "$sock" --file "$disk" >"$GUEST_DIR/blk-serve.log" 2>&1 &
BS=$!
cleanup "kill $BS; wait $BS"
for _ in $(seq 100); do [ -S "$sock" ] && break; alive "$BS" || break; sleep 0.05; done
[ -S "$sock" ] || fail "blk-serve did not listen on $sock: $(tail -3 "$GUEST_DIR/blk-serve.log")"
in_cgroup "$BS" soc || fail "the back end is not in the SoC cgroup: $(grep cpuacct /proc/$BS/cgroup)"

soc0=$(cpu soc); host0=$(cpu host); bs0=$(proc_cpu "$BS")

step "a guest in the host domain writes 64 MiB to the disk and reads it back 4 times"
guest_boot g --vhost-blk "$sock" --in-domain "$N" host <<'G'
#!/bin/sh
set -e
dd if=/dev/urandom of=/tmp/r bs=1M count=64 2>/dev/null
echo "SHA=$(sha256sum /tmp/r | cut -d' ' -f1)"
dd if=/tmp/r of=/dev/vda bs=1M conv=fsync 2>/dev/null
rm /tmp/r
for i in 1 2 3 4; do
  echo 3 >/proc/sys/vm/drop_caches
  echo "READ$i=$(dd if=/dev/vda bs=1M count=64 2>/dev/null | sha256sum | cut -d' ' -f1)"
done
G
QPID=$(guest_pid g)
for _ in $(seq 50); do in_cgroup "$QPID" host && break; sleep 0.1; done
in_cgroup "$QPID" host || fail "QEMU is not in the host cgroup: $(grep cpuacct /proc/$QPID/cgroup)"
guest_wait g || { guest_output g | tail; fail "the guest failed"; }

sha=$(guest_value g SHA)
for i in 1 2 3 4; do
  r=$(guest_value g "READ$i")
  [ "$r" = "$sha" ] || fail "read $i in the guest gave sha256 $r, it wrote $sha"
done
h=$(head -c 64M "$disk" | sha256sum | cut -d' ' -f1)
[ "$h" = "$sha" ] || fail "the back end's file holds sha256 $h, the guest wrote $sha"
echo "guest wrote and read back 64 MiB 4 times, sha256 $sha; the file matches"

step "the back end's CPU is charged to the SoC, QEMU's to the host"
alive "$BS" || fail "blk-serve died: $(tail -3 "$GUEST_DIR/blk-serve.log")"
bs1=$(proc_cpu "$BS"); soc1=$(cpu soc); host1=$(cpu host)
dbs=$(awk -v a="$bs0" -v b="$bs1" 'BEGIN{print b-a}')
dsoc=$(awk -v a="$soc0" -v b="$soc1" 'BEGIN{print b-a}')
dhost=$(awk -v a="$host0" -v b="$host1" 'BEGIN{print b-a}')
echo "back end +$dbs s; soc +$dsoc s; host +$dhost s"
assert_cmp "$dbs" ">" 0 "the back end's own cpu time (it served 320 MiB)"
assert_cmp "$dsoc" ">=" "$(awk -v a="$dbs" 'BEGIN{print a*0.9}')" "soc cpu_seconds against the back end's cpu time"
assert_cmp "$dhost" ">=" 2 "host cpu_seconds while a TCG guest boots and runs"
assert_cmp "$dsoc" "<=" "$(awk -v a="$dbs" 'BEGIN{print a+0.5}')" "soc cpu_seconds: QEMU's cpu must not land there"
