#!/usr/bin/env bash
# A crashed disk service is a pause (issue 19): ext4 on a loop device
# (--direct-io=on) on an attached disk, fio writing with crc32c verify, and
# the node's disk-<name> service killed with SIGKILL twice mid-run. The
# agent restarts it, the new process takes over the same FUSE connection
# from the node's fd keeper, requests in flight are resent: fio ends with 0
# errors, the file written before reads back, the loop device and ext4 keep
# working. Then `disk detach` of the busy disk is refused, naming what holds it.
source "$(dirname "$0")/lib.sh"
N=dk$ID
H=gk$ID
work=$(mktemp -d /tmp/oc-dk-XXXX); cleanup "rm -rf $work"
mkdir -p "$work/mnt"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N" >/dev/null
oc volume create kv --size 1G --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:kv" --node "$N" --name kv >/dev/null
cleanup "\"$OFFCORE\" disk detach kv --node $N --force"
disk=/run/offcore/$N/disks/kv
log=/run/offcore/$N/disk-kv.log

svc_pid() {
  oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="disk-kv" and .state=="running") | .pid'
}
# SIGKILLs the disk service and waits until the agent reports a new process
# that took over the connection; prints the new pid.
kill_disk_service() {
  local old new=
  old=$(svc_pid)
  [ -n "$old" ] || fail "the agent reports no running disk-kv service"
  local took=$(grep -c "took over the connection" "$log" || true)
  kill -9 "$old"
  for _ in $(seq 100); do
    new=$(svc_pid)
    if [ -n "$new" ] && [ "$new" != "$old" ] &&
       [ "$(grep -c "took over the connection" "$log" || true)" -gt "$took" ]; then
      echo "$new"; return 0
    fi
    sleep 0.1
  done
  tail -5 "$log" >&2
  fail "the disk service did not come back and take over its connection within 10 s (old pid $old, now '$new')"
}

step "ext4 on a direct-I/O loop device on the disk, a file written first"
L=$(losetup --find --show --direct-io=on "$disk")
cleanup "losetup -d $L"
mkfs.ext4 -q "$L"
mount "$L" "$work/mnt"
cleanup "umount -l $work/mnt"
head -c $((8 << 20)) /dev/urandom > "$work/before"
cp "$work/before" "$work/mnt/before"
sync
sum_before=$(md5sum < "$work/before")

kmsg_before=$(dmesg | wc -l)
step "fio writes with crc32c verify; the disk service is killed twice mid-run"
# Rate-limited (about 6 s of writes) so both kills land mid-run on a fast
# machine too; a slow one only takes longer.
fio --name=kill9 --filename="$work/mnt/fio.dat" --rw=randwrite --bs=16k --size=192M --rate=32m --ioengine=libaio \
  --iodepth=16 --direct=1 --verify=crc32c --verify_fatal=1 --verify_state_save=0 --randrepeat=0 \
  --output-format=json --output="$work/fio.json" > "$work/fio.out" 2>&1 &
fio_pid=$!
cleanup "kill $fio_pid"
sleep 1.5
pid1=$(kill_disk_service)
echo "disk service killed, restarted as pid $pid1"
sleep 1
if alive "$fio_pid"; then
  pid2=$(kill_disk_service)
  echo "disk service killed again, restarted as pid $pid2"
else
  fail "fio finished before the second kill; make its job longer: $(tail -5 "$work/fio.out") $(jq -c '.jobs[0] | {error, w: .write.io_kbytes, r: .read.io_kbytes}' "$work/fio.json" 2>/dev/null)"
fi
rc=0
wait "$fio_pid" || rc=$?
[ "$rc" -eq 0 ] || fail "fio failed (rc $rc): $(tail -5 "$work/fio.out")"
errs=$(jq '[.jobs[] | .error + .write.total_ios * 0] | add' "$work/fio.json")
[ "$errs" -eq 0 ] || fail "fio reported error $errs"
written=$(jq '.jobs[0].write.io_kbytes' "$work/fio.json")
read_back=$(jq '.jobs[0].read.io_kbytes' "$work/fio.json")
echo "fio: $written KiB written, $read_back KiB verified, 0 errors"
assert_cmp "$read_back" ">=" "$written" "fio verified less than it wrote"
jq -e '.adopted == true' "$disk.json" >/dev/null || fail "the disk record does not say the connection was adopted"

step "the loop device and ext4 keep working; the earlier file reads back"
[ "$(md5sum < "$work/mnt/before")" = "$sum_before" ] || fail "the file written before the kills differs"
head -c $((4 << 20)) /dev/urandom > "$work/after"
cp "$work/after" "$work/mnt/after"
sync
umount "$work/mnt"
echo 3 > /proc/sys/vm/drop_caches
mount "$L" "$work/mnt"
[ "$(md5sum < "$work/mnt/before")" = "$sum_before" ] || fail "the earlier file differs after a remount"
cmp -s "$work/after" "$work/mnt/after" || fail "the file written after the kills differs after a remount"
if dmesg | tail -n +"$((kmsg_before + 1))" | grep -i "$(basename "$L")" | grep -qi "error"; then
  fail "the kernel logged I/O errors on $L: $(dmesg | tail -n +"$((kmsg_before + 1))" | grep -i error | head -3)"
fi

step "detach of the busy disk is refused, naming what holds it"
expect_fail "disk kv is busy: $L (mounted on $work/mnt)" oc disk detach kv --node "$N"
[ -n "$(svc_pid)" ] || fail "a refused detach stopped the disk service"
umount "$work/mnt"
sleep 300 < "$disk" &
holder=$!
cleanup "kill $holder"
expect_fail "pid $holder (sleep)" oc disk detach kv --node "$N"
kill "$holder"; wait "$holder" 2>/dev/null || true
losetup -d "$L"
oc disk detach kv --node "$N" >/dev/null
[ ! -e "$disk" ] || fail "detach left the disk file"
[ -z "$(svc_pid)" ] || fail "detach left the disk service running"
