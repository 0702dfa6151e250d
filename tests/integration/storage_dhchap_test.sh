#!/usr/bin/env bash
# DH-HMAC-CHAP end to end: a volume allowed to a node gets a secret for it
# (shown once, kept 0600 by the gateway); `disk attach` with the right secret
# works (also from a 0600 --secret-file, never on the service's argv), with a
# wrong one or none it fails with a clear one-line error; `volume get` says per
# host whether access is DH-HMAC-CHAP or NQN only, and listings never show secrets.
source "$(dirname "$0")/lib.sh"
N=sa$ID
H=gwa$ID
work=$(mktemp -d /tmp/oc-sa-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N"
T="--target $H"
HOSTNQN="nqn.2026-11.io.offcore:node:$N"
URI="nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:v1"

step "create: the allowed host gets a secret, shown once"
out=$(oc volume create v1 --size 64M --allow-host "$HOSTNQN" $T --json)
secret=$(jq -r --arg h "$HOSTNQN" '.new_secrets[] | select(.nqn==$h) | .dhchap_secret' <<<"$out")
[[ "$secret" == DHHC-1:01:*: ]] || fail "no DHHC-1:01 secret in the create reply: $out"
[ "$(stat -c %a "$work/data/dhchap-secrets.json")" = 600 ] || fail "the gateway's secrets file is not 0600"
listing=$(oc volume list --json $T; oc volume get v1 --json $T; oc volume get v1 $T)
[[ "$listing" != *DHHC-1* ]] || fail "a listing shows a secret"
oc volume get v1 $T | grep -q "$HOSTNQN.*DH-HMAC-CHAP" || fail "volume get does not say DH-HMAC-CHAP"
# A valid secret that belongs to another volume's host: the wrong one here.
wrong=$(oc volume create v2 --size 16M --allow-host "$HOSTNQN" $T --json | jq -r '.new_secrets[0].dhchap_secret')

step "attach without a secret, with a wrong one, from an open file: refused"
expect_fail "requires DH-HMAC-CHAP" oc disk attach "$URI" --node "$N" --name d0
expect_fail "authentication failed" oc disk attach "$URI" --node "$N" --name d1 --dhchap-secret "$wrong"
printf 'dhchap_secret=%s\n' "$secret" > "$work/key"
chmod 644 "$work/key"
expect_fail "chmod 600" oc disk attach "$URI" --node "$N" --name d1 --secret-file "$work/key"
expect_fail "not a DH-HMAC-CHAP secret" oc disk attach "$URI" --node "$N" --name d1 --dhchap-secret "DHHC-1:01:nope:"

step "attach with the right secret from a 0600 file: I/O works"
chmod 600 "$work/key"
oc disk attach "$URI" --node "$N" --name d1 --secret-file "$work/key"
disk=/run/offcore/$N/disks/d1
jq -e '.auth == "DH-HMAC-CHAP"' "$disk.json" >/dev/null || fail "disk json does not record the authentication"
kept=/run/offcore/$N/secrets/disk-d1.secret
[ "$(stat -c %a "$kept")" = 600 ] || fail "the node's copy of the secret is not 0600"
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="disk-d1") | .pid')
! tr '\0' ' ' < /proc/$svc_pid/cmdline | grep -q DHHC-1 || fail "the secret is on the disk service's command line"
dd if=/dev/urandom of="$work/blob" bs=1M count=4 status=none
dd if="$work/blob" of="$disk" bs=1M oflag=direct conv=notrunc status=none
cmp <(dd if="$disk" bs=1M count=4 iflag=direct status=none) "$work/blob" || fail "data read back differs"
grep -q "authenticated queue 0 .* (DH-HMAC-CHAP" "$work/data.log" || fail "the gateway log shows no authenticated admin queue"
grep -q "authenticated queue 1 .* (DH-HMAC-CHAP" "$work/data.log" || fail "the gateway log shows no authenticated I/O queue"

step "bidirectional: the node authenticates the gateway too"
out=$(oc volume allow v1 --host "$HOSTNQN" --bidirectional $T --json)
ctrl=$(jq -r '.new_secrets[0].dhchap_ctrl_secret' <<<"$out")
[[ "$ctrl" == DHHC-1:* ]] || fail "no controller secret in the allow reply: $out"
oc volume get v1 $T | grep -q "DH-HMAC-CHAP (bidirectional)" || fail "volume get does not say bidirectional"
oc disk attach "$URI" --node "$N" --name d2 --dhchap-secret "$secret" --dhchap-ctrl-secret "$ctrl"
jq -e '.auth == "DH-HMAC-CHAP (bidirectional)"' "/run/offcore/$N/disks/d2.json" >/dev/null || fail "d2 is not bidirectional"
expect_fail "controller secret" oc disk attach "$URI" --node "$N" --name d3 --dhchap-secret "$secret" --dhchap-ctrl-secret "$wrong"
oc disk detach d2 --node "$N"

step "NQN only is said so"
oc volume allow v1 --host "$HOSTNQN" --nqn-only $T
oc volume get v1 $T | grep -q "$HOSTNQN.*NQN only" || fail "volume get does not say NQN only"

step "detach removes the node's copy"
oc disk detach d1 --node "$N"
[ ! -e "$kept" ] || fail "detach left the secret file"
