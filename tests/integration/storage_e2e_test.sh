#!/usr/bin/env bash
# Volumes end to end: create -> attach through the SoC -> mkfs.ext4 -> mount
# -> write -> detach; then snapshot, clone, attach the clone, check the data
# is there and that writes to the clone leave the origin alone.
source "$(dirname "$0")/lib.sh"
N=se$ID
H=gw$ID
work=$(mktemp -d /tmp/oc-se-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
T="--target $H"
nqn() { echo "nqn.2026-11.io.offcore:$H:$1"; }
mkdir -p "$work/mnt"
cleanup "umount -l $work/mnt"

step "create and attach"
oc volume create v1 --size 256M $T
oc volume list --json $T | jq -e '.[] | select(.name=="v1" and .size_bytes==268435456)' >/dev/null || fail "volume list"
oc disk attach "nvme-tcp://$GW_IP:4420/$(nqn v1)" --node "$N" --name d1
disk=/run/offcore/$N/disks/d1
[ "$(stat -c %s "$disk")" = 268435456 ] || fail "disk size"
oc dpu status --name "$N" --json | jq -e '.services[] | select(.name=="disk-d1" and .state=="running")' >/dev/null \
  || fail "dpu status does not show the disk"
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="disk-d1") | .pid')
grep -q "/offcore/$N/soc" /proc/$svc_pid/cgroup || fail "the initiator is not in the SoC domain"

step "mkfs.ext4, mount, write, sync"
L=$(loop_attach "$disk")
mkfs.ext4 -q "$L"
mount "$L" "$work/mnt"
echo "origin data" > "$work/mnt/hello.txt"
dd if=/dev/urandom of="$work/mnt/big" bs=1M count=16 status=none
sync
sum=$(md5sum < "$work/mnt/big")
umount "$work/mnt"
losetup -d "$L"
oc disk detach d1 --node "$N"
[ ! -e "$disk" ] || fail "detach left the disk file"

step "snapshot, clone, attach the clone"
oc volume snapshot v1 s1 $T
oc volume clone s1 c1 $T
oc volume list --json $T | jq -e '.[] | select(.name=="c1" and .parent=="s1")' >/dev/null || fail "clone parent"
expect_fail "has clones" oc volume delete s1 $T
oc disk attach "nvme-tcp://$GW_IP:4420/$(nqn c1)" --node "$N" --name d2
L=$(loop_attach "/run/offcore/$N/disks/d2")
mount "$L" "$work/mnt"
[ "$(cat "$work/mnt/hello.txt")" = "origin data" ] || fail "clone lacks the origin's file"
[ "$(md5sum < "$work/mnt/big")" = "$sum" ] || fail "clone's big file differs"
echo "clone data" > "$work/mnt/hello.txt"
sync
umount "$work/mnt"
losetup -d "$L"
oc disk detach d2 --node "$N"

step "the origin is unchanged by the clone's writes"
oc disk attach "nvme-tcp://$GW_IP:4420/$(nqn v1)" --node "$N" --name d3
L=$(loop_attach "/run/offcore/$N/disks/d3")
mount -o ro "$L" "$work/mnt"
[ "$(cat "$work/mnt/hello.txt")" = "origin data" ] || fail "origin changed"
umount "$work/mnt"
losetup -d "$L"

step "discard reaches the store"
before=$(oc volume list --json $T | jq '.[] | select(.name=="v1") | .allocated_bytes')
dd if=/dev/urandom of=/run/offcore/$N/disks/d3 bs=1M count=8 seek=200 oflag=direct conv=notrunc status=none
mid=$(oc volume list --json $T | jq '.[] | select(.name=="v1") | .allocated_bytes')
fallocate --punch-hole --keep-size --offset $((200 << 20)) --length $((8 << 20)) /run/offcore/$N/disks/d3
after=$(oc volume list --json $T | jq '.[] | select(.name=="v1") | .allocated_bytes')
echo "allocated: $before -> $mid -> $after"
assert_cmp "$mid" ">" "$before" "allocation after writing"
assert_cmp "$after" "<" "$mid" "allocation after discard"

step "dpu down detaches the disk"
oc dpu down --name "$N"
! grep -q " /run/offcore/$N/" /proc/self/mountinfo || fail "disk mount survived dpu down"

step "the store is consistent"
gateway_stop
oc target fsck --data "$work/data"
