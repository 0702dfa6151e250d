#!/usr/bin/env bash
# A VM's disk served by a vhost-user-blk back end keeps a filesystem: a guest
# makes ext4 on it, writes 64 MiB of random data and powers off; the data is
# in the back end's file (read from the host with debugfs, e2fsck clean); a
# second guest, a new QEMU on the same still-running back end, reads it back
# with the same SHA-256.
# First against qemu-storage-daemon (the reference: if it fails there, the
# kit or QEMU is at fault), then against `offcore vm blk-serve`.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"

D=$GUEST_DIR/vmblk
mkdir -p "$D"

write_script() {
  cat <<'EOF'
#!/bin/sh
set -e
mkfs.ext4 -q -F /dev/vda
mount -t ext4 /dev/vda /mnt
dd if=/dev/urandom of=/mnt/data bs=1M count=64 2>/dev/null
echo "SIZE=$(stat -c %s /mnt/data)"
sync
echo "SHA=$(sha256sum /mnt/data | cut -d' ' -f1)"
umount /mnt
EOF
}

read_script() {
  cat <<'EOF'
#!/bin/sh
set -e
mount -t ext4 /dev/vda /mnt
echo "SHA=$(sha256sum /mnt/data | cut -d' ' -f1)"
umount /mnt
EOF
}

# run_backend LABEL START STOP: START brings a back end up on $D/LABEL.sock
# over $D/LABEL.raw, STOP takes it down.
run_backend() {
  local label=$1 start=$2 stop=$3 sock=$D/$1.sock disk=$D/$1.raw
  rm -f "$disk" && truncate -s 256M "$disk"

  step "$label: guest 1 makes ext4 and writes 64 MiB"
  $start "$sock" "$disk"
  local t0=$SECONDS
  write_script | guest_run "$label-1" --vhost-blk "$sock" ||
    { guest_output "$label-1" | tail -20; fail "$label: the writing guest failed"; }
  local sha1 size
  sha1=$(guest_value "$label-1" SHA); size=$(guest_value "$label-1" SIZE)
  echo "guest 1 wrote $size bytes, sha256 $sha1 ($((SECONDS - t0)) s)"
  [ "$size" = $((64 << 20)) ] || fail "$label: guest 1 wrote $size bytes, expected 64 MiB"
  [ ${#sha1} -eq 64 ] || fail "$label: no SHA-256 from guest 1"

  step "$label: guest 2 (new QEMU, same back end) reads it back"
  t0=$SECONDS
  read_script | guest_run "$label-2" --vhost-blk "$sock" ||
    { guest_output "$label-2" | tail -20; fail "$label: the reading guest failed"; }
  local sha2
  sha2=$(guest_value "$label-2" SHA)
  echo "guest 2 read sha256 $sha2 ($((SECONDS - t0)) s)"
  [ "$sha2" = "$sha1" ] || fail "$label: guest 2 read $sha2, guest 1 wrote $sha1"
  $stop

  step "$label: the data is in the back end's file"
  e2fsck -fn "$disk" >"$D/$label.fsck" 2>&1 || { cat "$D/$label.fsck"; fail "$label: e2fsck found errors in $disk"; }
  local shah
  shah=$(debugfs -R "cat /data" "$disk" 2>/dev/null | sha256sum | cut -d' ' -f1)
  [ "$shah" = "$sha1" ] || fail "$label: /data in $disk has sha256 $shah, the guest wrote $sha1"
  echo "host reads the same sha256 from $disk"
}

offcore_start() {
  local sock=$1 disk=$2 i
  rm -f "$sock"
  "$OFFCORE" vm blk-serve --socket "$sock" --file "$disk" >>"$D/blk-serve.log" 2>&1 &
  OC_PID=$!
  cleanup "offcore_stop"
  for (( i = 0; i < 100; i++ )); do [ -S "$sock" ] && return 0; alive "$OC_PID" || break; sleep 0.05; done
  fail "offcore vm blk-serve did not listen on $sock: $(tail -3 "$D/blk-serve.log")"
}

offcore_stop() {
  [ -n "${OC_PID:-}" ] || return 0
  alive "$OC_PID" || { wait "$OC_PID" 2>/dev/null; OC_PID=; fail "offcore vm blk-serve died: $(tail -3 "$D/blk-serve.log")"; }
  kill "$OC_PID" 2>/dev/null
  wait "$OC_PID" 2>/dev/null || true
  OC_PID=
}

guest_kit
run_backend qsd qsd_start qsd_stop
if [ -n "${VM_BLK_REFERENCE_ONLY:-}" ]; then
  echo "VM_BLK_REFERENCE_ONLY set: skipping offcore's back end"
  exit 0
fi
run_backend offcore offcore_start offcore_stop
