#!/usr/bin/env bash
# A vhost-user-blk disk over a packed virtqueue (VIRTIO_F_RING_PACKED,
# QEMU's packed=on) keeps a filesystem: against `offcore vm blk-serve --file`,
# a guest makes ext4, writes 64 MiB of random data and powers off; a second
# guest (a new QEMU, same back end, packed again) reads the same SHA-256 back;
# the host reads it from the file too. Both guests and the back end must say
# packed was negotiated (the guest's virtio feature bit 34, the back end's
# SET_FEATURES log line), or the test proves nothing about packed rings.
# Uses no software-DPU node.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"

D=$GUEST_DIR/vmpacked
mkdir -p "$D"
SOCK=$D/blk.sock
DISK=$D/disk.raw
LOG=$D/blk-serve.log

# The guest's view: feature bit 34 of the disk's virtio device (the
# features file is one '0'/'1' per bit, bit 0 first).
features_line='echo "PACKED=$(cut -c35 /sys/block/vda/device/features)"'

write_script() {
  cat <<EOF
#!/bin/sh
set -e
$features_line
mkfs.ext4 -q -F /dev/vda
mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/data bs=1M count=64 2>/dev/null
echo "SIZE=\$(stat -c %s /mnt/data)"
sync
echo "SHA=\$(sha256sum /mnt/data | cut -d' ' -f1)"
umount /mnt
EOF
}

read_script() {
  cat <<EOF
#!/bin/sh
set -e
$features_line
mount -t ext4 /dev/vda /mnt
echo "SHA=\$(sha256sum /mnt/data | cut -d' ' -f1)"
umount /mnt
EOF
}

stop_backend() {
  [ -n "${OC_PID:-}" ] || return 0
  kill "$OC_PID" 2>/dev/null
  wait "$OC_PID" 2>/dev/null || true
  OC_PID=
}

guest_kit
rm -f "$DISK" && truncate -s 256M "$DISK"
"$OFFCORE" vm blk-serve --socket "$SOCK" --file "$DISK" >>"$LOG" 2>&1 &
OC_PID=$!
cleanup stop_backend
for (( i = 0; i < 100; i++ )); do [ -S "$SOCK" ] && break; alive "$OC_PID" || break; sleep 0.05; done
[ -S "$SOCK" ] || fail "offcore vm blk-serve did not listen on $SOCK: $(tail -3 "$LOG")"

step "guest 1 (packed=on) makes ext4 and writes 64 MiB"
write_script | guest_run packed-1 --packed --vhost-blk "$SOCK" ||
  { guest_output packed-1 | tail -20; fail "the writing guest failed"; }
[ "$(guest_value packed-1 PACKED)" = 1 ] ||
  fail "guest 1 did not negotiate a packed ring (feature bit 34 is '$(guest_value packed-1 PACKED)')"
sha1=$(guest_value packed-1 SHA)
size=$(guest_value packed-1 SIZE)
[ "$size" = $((64 << 20)) ] || fail "guest 1 wrote $size bytes, expected 64 MiB"
[ ${#sha1} -eq 64 ] || fail "no SHA-256 from guest 1"
echo "guest 1: packed ring, wrote $size bytes, sha256 $sha1"

step "the back end acked RING_PACKED"
feat=$(grep -o 'features 0x[0-9a-f]*' "$LOG" | tail -1 | cut -d' ' -f2)
[ -n "$feat" ] || fail "blk-serve logged no features line: $(tail -3 "$LOG")"
(( (feat >> 34) & 1 )) || fail "blk-serve's last SET_FEATURES $feat lacks VIRTIO_F_RING_PACKED (bit 34)"
echo "blk-serve features $feat"

step "guest 2 (new QEMU, packed=on, same back end) reads it back"
read_script | guest_run packed-2 --packed --vhost-blk "$SOCK" ||
  { guest_output packed-2 | tail -20; fail "the reading guest failed"; }
[ "$(guest_value packed-2 PACKED)" = 1 ] || fail "guest 2 did not negotiate a packed ring"
sha2=$(guest_value packed-2 SHA)
[ "$sha2" = "$sha1" ] || fail "guest 2 read $sha2, guest 1 wrote $sha1"
alive "$OC_PID" || fail "offcore vm blk-serve died: $(tail -3 "$LOG")"
if grep -q 'guest broke' "$LOG"; then fail "blk-serve saw a broken ring: $(grep 'guest broke' "$LOG" | head -1)"; fi
stop_backend

step "the data is in the back end's file"
e2fsck -fn "$DISK" >"$D/fsck" 2>&1 || { cat "$D/fsck"; fail "e2fsck found errors in $DISK"; }
shah=$(debugfs -R "cat /data" "$DISK" 2>/dev/null | sha256sum | cut -d' ' -f1)
[ "$shah" = "$sha1" ] || fail "/data in $DISK has sha256 $shah, the guest wrote $sha1"
echo "PASS: packed virtqueue kept 64 MiB across two guests (sha256 $sha1)"
