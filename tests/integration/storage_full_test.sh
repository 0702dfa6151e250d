#!/usr/bin/env bash
# A full thin pool: writes past the pool's capacity fail with an error (not
# silently), data written before stays intact, and the store stays
# consistent. Also: a host not on a volume's allow-list cannot attach it.
source "$(dirname "$0")/lib.sh"
N=sf$ID
H=gf$ID
work=$(mktemp -d /tmp/oc-sf-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data" "--capacity 48M"
node_up "$N" --host-netns "h$N"
oc volume create big --size 256M --target "$H" >/dev/null
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:big" --node "$N" --name big >/dev/null
disk=/run/offcore/$N/disks/big

step "fill the pool"
head -c $((16 << 20)) /dev/urandom > "$work/first"
dd if="$work/first" of="$disk" bs=1M oflag=direct conv=notrunc status=none
rc=0
err=$(dd if=/dev/zero of="$disk" bs=1M seek=32 count=64 oflag=direct conv=notrunc 2>&1) || rc=$?
echo "$err" | tail -1
[ "$rc" -ne 0 ] || fail "writing past the pool's capacity succeeded"
grep -qi "no space left" <<<"$err" || fail "expected ENOSPC, got: $err"

step "earlier data is intact and the store is consistent"
[ "$(dd if="$disk" bs=1M count=16 iflag=direct status=none | md5sum)" = "$(md5sum < "$work/first")" ] \
  || fail "data written before the pool filled changed"
oc volume list --json --target "$H" | jq -e '.[] | select(.name=="big") | .allocated_bytes <= 50331648' >/dev/null \
  || fail "allocation beyond the capacity"
oc disk detach big --node "$N" >/dev/null
gateway_stop
oc target fsck --data "$work/data"
gateway_start "$H" "$work/data" --capacity 48M

step "a host not on the allow-list is refused with Connect Invalid Host"
oc volume create locked --size 16M --target "$H" --allow-host nqn.2026-11.io.offcore:node:someone-else >/dev/null
expect_fail "refused this host" oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:locked" \
  --node "$N" --name locked
secret=$(oc volume allow locked --host "nqn.2026-11.io.offcore:node:$N" --target "$H" --json \
  | jq -r '.new_secrets[0].dhchap_secret')
[[ "$secret" == DHHC-1:* ]] || fail "allowing a host made no DH-HMAC-CHAP secret"
oc disk attach "nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:locked" --node "$N" --name locked \
  --dhchap-secret "$secret" >/dev/null
oc disk detach locked --node "$N" >/dev/null
