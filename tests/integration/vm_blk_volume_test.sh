#!/usr/bin/env bash
# A VM's disk is an NVMe/TCP volume: `offcore vm blk-serve --volume --node`
# runs in a software DPU's SoC domain, connects to a storage gateway on the
# fabric with the node's host NQN (the volume's allow list names it),
# and serves the volume to QEMU (host domain) over vhost-user. A guest
# writes 64 MiB; the back end is stopped with SIGTERM (it must exit 0 and
# remove its socket) and started again; a second guest reads the same data
# back from the volume.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/lib_guest.sh"
N=vv$ID
H=gv$ID
work=$(mktemp -d /tmp/oc-vv-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
gateway_up "$H" "$work/data"
node_up "$N" --host-netns "h$N" >/dev/null
guest_kit
# Only this node may connect: blk-serve --node must present its host NQN,
# and prove it with the DH-HMAC-CHAP secret the gateway made for it.
secret=$(oc volume create vmdisk --size 128M --allow-host "nqn.2026-11.io.offcore:node:$N" --target "$H" --json |
  jq -r '.new_secrets[0].dhchap_secret')
[[ $secret == DHHC-1:* ]] || fail "volume create made no DH-HMAC-CHAP secret"
(umask 077; echo "dhchap_secret=$secret" >"$work/secret")
uri="nvme-tcp://$GW_IP:4420/nqn.2026-11.io.offcore:$H:vmdisk"
sock=$GUEST_DIR/vol.sock
BS=

serve_start() {
  "$OFFCORE" dpu exec --name "$N" --domain soc -- \
    "$OFFCORE" vm blk-serve --socket "$sock" --volume "$uri" --node "$N" \
      --secret-file "$work/secret" --serial "vol$ID" >>"$work/blk-serve.log" 2>&1 &
  BS=$!
  for _ in $(seq 100); do [ -S "$sock" ] && return 0; alive "$BS" || break; sleep 0.05; done
  fail "blk-serve --volume did not listen on $sock: $(tail -3 "$work/blk-serve.log")"
}
serve_kill() { [ -n "$BS" ] && kill "$BS" 2>/dev/null; wait "$BS" 2>/dev/null || true; BS=; }
cleanup "serve_kill"

step "a host not on the volume's allow list is refused"
if "$OFFCORE" dpu exec --name "$N" --domain soc -- "$OFFCORE" vm blk-serve --socket "$sock" --volume "$uri" \
     --node "other$ID" --secret-file "$work/secret" >"$work/refused.log" 2>&1; then
  fail "blk-serve served a volume to a host the allow list does not name"
fi
[ ! -e "$sock" ] || fail "a refused blk-serve left a socket behind"
echo "refused: $(tail -1 "$work/refused.log")"

step "blk-serve --volume in the SoC: a guest writes 64 MiB"
serve_start
grep -q "cpuacct.*/offcore/$N/soc\$" "/proc/$BS/cgroup" || fail "the back end is not in the SoC cgroup"
guest_run w --vhost-blk "$sock" --in-domain "$N" host <<G || { guest_output w | tail; fail "the writing guest failed"; }
#!/bin/sh
set -e
echo "SERIAL=\$(cat /sys/block/vda/serial)"
echo "SECTORS=\$(cat /sys/block/vda/size)"
dd if=/dev/urandom of=/tmp/r bs=1M count=64 2>/dev/null
echo "SHA=\$(sha256sum /tmp/r | cut -d' ' -f1)"
dd if=/tmp/r of=/dev/vda bs=1M oflag=direct conv=fsync 2>/dev/null
G
sha=$(guest_value w SHA)
[ ${#sha} -eq 64 ] || fail "no SHA-256 from the writing guest"
[ "$(guest_value w SECTORS)" = $((128 << 11)) ] || fail "the guest sees $(guest_value w SECTORS) sectors, the volume has 128 MiB"
[ "$(guest_value w SERIAL)" = "vol$ID" ] || fail "serial: got '$(guest_value w SERIAL)', want vol$ID"
alloc=$(oc volume list --target "$H" --json | jq -r '.[] | select(.name=="vmdisk") | .allocated_bytes')
assert_cmp "$alloc" ">=" $((64 << 20)) "bytes the gateway allocated for the volume"
echo "guest wrote 64 MiB (sha256 $sha); the gateway holds $alloc bytes"

step "SIGTERM: blk-serve exits 0 and removes its socket"
kill -TERM "$BS"
rc=0; wait "$BS" || rc=$?
BS=
[ "$rc" = 0 ] || fail "blk-serve exited $rc on SIGTERM: $(tail -3 "$work/blk-serve.log")"
[ ! -e "$sock" ] || fail "blk-serve left its socket behind"

step "a new blk-serve, a new guest: the data is on the volume"
serve_start
guest_run r --vhost-blk "$sock" --in-domain "$N" host <<'G' || { guest_output r | tail; fail "the reading guest failed"; }
#!/bin/sh
set -e
echo "SHA=$(dd if=/dev/vda bs=1M count=64 iflag=direct 2>/dev/null | sha256sum | cut -d' ' -f1)"
G
got=$(guest_value r SHA)
[ "$got" = "$sha" ] || fail "the second guest read sha256 $got, the first wrote $sha"
echo "read back the same sha256 through a new back end"
