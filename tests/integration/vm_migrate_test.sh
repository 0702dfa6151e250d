#!/usr/bin/env bash
# offcore vm migrate under guest writes: a writer in the guest writes
# sequence-numbered 4 KiB blocks with O_DIRECT and prints an ACK after each
# returns; the VM moves from node A to node B meanwhile. Every acknowledged
# block must read back intact, in the guest and in the disk file, and the
# migration reports its downtime.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
A=ma$ID B=mb$ID VM=mig$ID
node_up "$A" >/dev/null
netns_add "h$B"
node_up "$B" --host-netns "h$B" >/dev/null
guest_kit
disk=$GUEST_DIR/disk.raw
truncate -s 64M "$disk"
cleanup "\"$OFFCORE\" vm delete $VM --force"
BLOCKS=5000

_guest_initrd "$VM" 0 <<G
#!/bin/sh
i=1
while [ \$i -le $BLOCKS ]; do
  printf 'offcore-seq-%08d\n' \$i >/tmp/b
  dd if=/tmp/b of=/dev/vda bs=4096 seek=\$i count=1 conv=sync,notrunc oflag=direct 2>/dev/null || { echo "WRITE-ERR=\$i"; exit 1; }
  echo "ACK=\$i"
  i=\$((i + 1))
done
echo "WRITES-DONE"
n=\$(dd if=/dev/vda bs=4096 skip=1 count=$BLOCKS iflag=direct 2>/dev/null | tr -d '\0' | grep -c '^offcore-seq-')
echo "VERIFY=\$n"
G

oc vm create "$VM" --node "$A" --disk "$disk" --kernel "$GUEST_KIT/kernel" --initrd "$GUEST_DIR/$VM.initrd" \
  --append "console=ttyS0 panic=-1 quiet" >/dev/null
oc vm start "$VM" >/dev/null
logA=/run/offcore/$A/vms/$VM/console.log logB=/run/offcore/$B/vms/$VM/console.log
last_ack() { cat "$@" 2>/dev/null | sed -n 's/^ACK=\([0-9]*\).*/\1/p' | tail -1; }

step "the guest writes; migrate once it has acknowledged 200 blocks"
for _ in $(seq 900); do [ "$(last_ack "$logA")" -ge 200 ] 2>/dev/null && break; sleep 0.1; done
[ "$(last_ack "$logA")" -ge 200 ] || fail "the guest did not start writing: $(tail -3 "$logA")"
expect_fail "already runs on node" oc vm migrate "$VM" --to "$A"
out=$(oc vm migrate "$VM" --to "$B" --json)
echo "$out"
before=$(last_ack "$logA")
down=$(echo "$out" | jq -r .downtime_ms)
[ "$down" -ge 0 ] 2>/dev/null || fail "no downtime reported: $out"
[ "$(oc vm list --json | jq -r --arg v "$VM" '.[] | select(.name == $v) | .node')" = "$B" ] ||
  fail "the VM record does not name node $B"
[ -z "$(oc dpu service list --name "$A" --json | jq -r '.[].name' | grep "vm-$VM-")" ] ||
  fail "node $A still runs the VM's services"

step "the guest goes on writing on node B, then checks every block"
for _ in $(seq 1800); do grep -q "^VERIFY=" "$logB" 2>/dev/null && break; sleep 0.1; done
grep -q "^WRITE-ERR" "$logA" "$logB" && fail "a write failed in the guest: $(grep -h WRITE-ERR "$logA" "$logB")"
grep -q "^VERIFY=" "$logB" || fail "the guest did not finish on node $B: $(tail -3 "$logB")"
after=$(last_ack "$logB")
[ "$after" = "$BLOCKS" ] || fail "the guest stopped at block $after on node $B"
[ "$before" -lt "$BLOCKS" ] || fail "the writes were over before the switch: nothing was tested"
v=$(sed -n 's/^VERIFY=\([0-9]*\).*/\1/p' "$logB")
[ "$v" = "$BLOCKS" ] || fail "the guest read back $v of $BLOCKS acknowledged blocks"
bad=0
for i in $(seq 1 97 "$BLOCKS") "$before" $((before + 1)) "$BLOCKS"; do
  got=$(dd if="$disk" bs=4096 skip="$i" count=1 2>/dev/null | head -c 20)
  [ "$got" = "$(printf 'offcore-seq-%08d' "$i")" ] || { echo "block $i holds '$got'"; bad=$((bad + 1)); }
done
[ "$bad" = 0 ] || fail "$bad acknowledged blocks are wrong in the disk file"
echo "all $BLOCKS acknowledged blocks intact; switched after block $before; downtime ${down} ms"
