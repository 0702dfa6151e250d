#!/usr/bin/env bash
# Lazy container images end to end, with real containerd, ctr, runc and
# docker-registry (on a fabric host, reached through the node's SoC):
#  1. rootfs fidelity: a three-layer image full of whiteouts, opaque dirs,
#     hard links, symlinks, xattrs and special files gives the same rootfs
#     through containerd's overlayfs snapshotter, offcore layered (registry
#     and gateway back ends) and offcore flat;
#  2. `ctr image pull --snapshotter offcore` of the lazy image fetches stubs
#     only, and `ctr run` works from both back ends;
#  3. corrupted chunks are detected (EIO, never wrong bytes);
#  4. a conversion does not reuse what the registry or the gateway lost.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
N=il$ID
work=$(mktemp -d /var/tmp/oc-il-XXXX); cleanup "rm -rf $work"
CD_DIR=$work/cd SN_DIR=$work/sn CAT=$work/catalog
mkdir -p "$SN_DIR"
keep_logs "$work"

node_up "$N" >/dev/null
registry_up "reg$ID" "$work/registry"
gateway_up "gw$ID" "$work/gw-data"
GW="nvme-tcp://$GW_IP:4420"
mkdir -p "$CD_DIR"
# The registry back end (auto would take the gateway copy), and no small
# layer fetched whole: the laziness checks below see what reads fetch.
snapshotter_start offcore --node "$N" --catalog "$CAT" --plain-http --backend registry --fill-below 0
snapshotter_start offcore-flat --node "$N" --catalog "$CAT" --mode flat --plain-http
containerd_up "$CD_DIR"
cleanup "rm -rf /var/cache/offcore/$N"
cleanup "umount_below /run/offcore/$N/images"
cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
cleanup "umount_below $SN_DIR"
cleanup "snapshotter_stop offcore; snapshotter_stop offcore-flat"

step "build the fidelity image and push it through the SoC"
python3 "$IMG_DIR/make_fidelity_image.py" "$work/layout" v1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/fid:v1"

step "convert: layered to the registry and the gateway, flat to the gateway"
oc image convert "$REG/fid:v1" --to registry --to "$GW" --dest "$REG/fid:lazy" --plain-http --catalog "$CAT" \
  --chunk-size 64K --json > "$work/convert.json"
jq -e '.layers | length == 3' "$work/convert.json" >/dev/null || fail "convert did not report 3 layers"
oc image convert "$REG/fid:v1" --mode flat --to "$GW" --dest "$REG/fid:flat" --plain-http --catalog "$CAT" > "$work/flat.txt"
grep -q "converted" "$work/flat.txt" || fail "flat conversion printed no summary"
oc image list --catalog "$CAT" --json | jq -e 'map(select(.ref | endswith("fid:lazy"))) | length == 1' >/dev/null \
  || fail "image list does not show the lazy image"
step "a second conversion reuses every layer"
oc image convert "$REG/fid:v1" --to registry --to "$GW" --dest "$REG/fid:lazy" --plain-http --catalog "$CAT" \
  --json | jq -e '[.layers[].reused] | all' >/dev/null || fail "layers were converted twice"

step "what the registry or the gateway lost is made again, not reused from the catalog"
blob=$(jq -r '.layers[0].created[] | select(endswith("chunks)")) | split(" ")[1]' "$work/convert.json")
vol=$(jq -r '.layers[1].created[] | select(startswith("volume ")) | split(" ")[1]' "$work/convert.json")
[ -n "$blob" ] && [ -n "$vol" ] || fail "convert.json names no chunk blob or volume"
curl -sf -X DELETE "http://$REG/v2/fid/blobs/$blob" >/dev/null || fail "could not delete $blob from the registry"
curl -sf -I "http://$REG/v2/fid/blobs/$blob" >/dev/null && fail "the registry still has $blob"
oc volume delete "$vol" --target "gw$ID" >/dev/null
oc image convert "$REG/fid:v1" --to registry --to "$GW" --dest "$REG/fid:lazy" --plain-http --catalog "$CAT" \
  --chunk-size 64K --json > "$work/convert2.json"
jq -e '[.layers[].reused] == [false, false, true]' "$work/convert2.json" >/dev/null \
  || fail "reused after the loss: $(jq -c '[.layers[].reused]' "$work/convert2.json") (want [false,false,true])"
blob2=$(jq -r '.layers[0].created[] | select(endswith("chunks)")) | split(" ")[1]' "$work/convert2.json")
curl -sf -I "http://$REG/v2/fid/blobs/$blob2" >/dev/null || fail "layer 0's chunks were not pushed again"
oc volume list --json --target "gw$ID" | jq -e --arg v "$vol" 'map(select(.name == $v)) | length == 1' >/dev/null \
  || fail "volume $vol was not written again"

step "a conversion into another repository of the registry mounts the chunks, pushes none"
oc image convert "$REG/fid:v1" --to registry --dest "$REG/fid-copy:lazy" --plain-http --catalog "$CAT" \
  --json > "$work/convert3.json"
mounted=$(jq '[.layers[].created[] | select(endswith("(mounted from fid)"))] | length' "$work/convert3.json")
[ "$mounted" = 6 ] || fail "mounted $mounted chunk blobs from fid (want 2 per layer): $(jq -c '[.layers[].created]' "$work/convert3.json")"
jq -e '[.layers[].created[] | select(endswith("chunks)"))] | length == 0' "$work/convert3.json" >/dev/null \
  || fail "chunks were pushed again instead of mounted"
curl -sf -I "http://$REG/v2/fid-copy/blobs/$blob2" >/dev/null || fail "fid-copy does not have $blob2 after the mount"

step "reference rootfs from containerd's overlayfs snapshotter"
top=$($CTR image pull --plain-http --print-chainid "$REG/fid:v1" | awk '/image chain ID/ {print $NF}')
[ -n "$top" ] || fail "no chain id from ctr pull"
rootfs_listing overlayfs "$top" "$work/ref.txt"
grep -q "^data/opq/new " "$work/ref.txt" || fail "reference listing looks wrong"

step "layered (registry back end): pull fetches stubs only"
content_total() { $CTR content ls | awk 'NR>1 {print $1}' | while read -r d; do $CTR content get "$d" | wc -c; done | awk '{s+=$1} END {print s+0}'; }
before=$(content_total)
lazy_top=$($CTR image pull --plain-http --print-chainid --snapshotter offcore "$REG/fid:lazy" | awk '/image chain ID/ {print $NF}')
# The lazy image's content is its manifest, config and three stubs.
pulled=$(( $(content_total) - before ))
echo "containerd pulled $pulled bytes of content"
assert_cmp "$pulled" "<" 200000 "ctr pulled more than manifests and stubs"
$CTR snapshots --snapshotter offcore ls | awk -v t="$lazy_top" '$1 == t && $3 == "Committed" {f=1} END {exit !f}' \
  || fail "the lazy image's top is not a committed snapshot in offcore"
rootfs_listing offcore "$lazy_top" "$work/layered.txt"
diff -u "$work/ref.txt" "$work/layered.txt" || fail "layered rootfs differs from overlayfs"

step "ctr run from the lazy image"
out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" run1$ID /data/hello.sh)
[ "$out" = "hello from offcore" ] || fail "container printed '$out'"
fetched=$(oc image layers --node "$N" --json | jq '[.layers[].stats.bytes_fetched] | add')
size=$(oc image layers --node "$N" --json | jq '[.layers[].size_bytes] | add')
echo "fetched $fetched of $size bytes"
assert_cmp "$fetched" "<" "$size" "lazy loading fetched the whole image"
oc image layers --node "$N" --json | jq -e '[.layers[].backend] | all(. == "registry")' >/dev/null \
  || fail "layers were not served from the registry"
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="images") | .pid')
grep -q "/offcore/$N/soc" "/proc/$svc_pid/cgroup" || fail "the image service is not in the SoC domain"

step "flat (gateway back end): same rootfs, writable clone"
flat_top=$($CTR image pull --plain-http --print-chainid --snapshotter offcore-flat "$REG/fid:flat" | awk '/image chain ID/ {print $NF}')
rootfs_listing offcore-flat "$flat_top" "$work/flat.txt"
# ext4 has lost+found; everything else must match.
grep -v "^lost+found " "$work/flat.txt" | diff -u "$work/ref.txt" - || fail "flat rootfs differs from overlayfs"
out=$($CTR run --rm --snapshotter offcore-flat "$REG/fid:flat" run2$ID /bin/sh -c 'echo w > /data/new && cat /data/new /data/opq/new')
[ "$out" = "$(printf 'w\nnew in layer 1')" ] || fail "flat container printed '$out'"
# A flat rootfs comes off a gateway volume: its device nodes and setuid bits
# must not work on the host.
root_opts=$($CTR run --rm --snapshotter offcore-flat "$REG/fid:flat" opts$ID /bin/cat /proc/mounts | awk '$2 == "/" {print $4}')
[[ ",$root_opts," == *,nodev,* && ",$root_opts," == *,nosuid,* ]] || fail "flat rootfs mounted '$root_opts', without nodev,nosuid"

step "flat: the pull made a spare rootfs, a create claims it, and none outlives the image or the snapshotter"
FLAT_ROOT=$SN_DIR/offcore-flat/flat
spare_disks() { oc disk list --node "$N" --json | jq -r '.[].name' | grep -c -- "^c-$N-s" || true; }
wait_for_spare() {
  for _ in $(seq 100); do
    compgen -G "$FLAT_ROOT/spare-*.json" >/dev/null && jq -e '.disk' $FLAT_ROOT/spare-*.json >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "no spare rootfs after 10 s: $(tail -3 "$SN_DIR/offcore-flat.log")"
}
wait_for_spare
claims=$(grep -c "the spare at" "$SN_DIR/offcore-flat.log" || true)
out=$($CTR run --rm --snapshotter offcore-flat "$REG/fid:flat" spare$ID /bin/sh -c 'cat /data/opq/new; ls /data/new 2>&1; true')
[[ "$out" == "new in layer 1"*"No such file"* ]] \
  || fail "a container on a spare rootfs printed '$out' (a spare must be a fresh clone of the image)"
assert_cmp "$(grep -c "the spare at" "$SN_DIR/offcore-flat.log")" ">" "$claims" \
  "the create did not take the spare: $(grep -E "spare|flat rootfs|Prepare|warn" "$SN_DIR/offcore-flat.log" | tail -25)"
wait_for_spare   # made again for the next create
# (The containers' clones go when containerd removes their snapshots, which
# it may do later: count the spares' records, not the disks.)
spares=$(compgen -G "$FLAT_ROOT/spare-*.json" | wc -l)
[ "$spares" = 1 ] || fail "$spares spare rootfs records; one spare per image"
$CTR image rm --sync "$REG/fid:flat" >/dev/null
for _ in $(seq 50); do compgen -G "$FLAT_ROOT/spare-*.json" >/dev/null || break; sleep 0.1; done
! compgen -G "$FLAT_ROOT/spare-*.json" >/dev/null || fail "the image is gone but its spare rootfs is not"
[ "$(spare_disks)" = 0 ] || fail "the image is gone but a spare's disk is attached"
$CTR image pull --plain-http --snapshotter offcore-flat "$REG/fid:flat" >/dev/null
wait_for_spare
snapshotter_stop offcore-flat
! compgen -G "$FLAT_ROOT/spare-*.json" >/dev/null || fail "the snapshotter stopped but left its spare rootfs"
[ "$(spare_disks)" = 0 ] || fail "the snapshotter stopped but left a spare's disk attached"
oc volume list --json --target "gw$ID" | jq -e '[.[] | select(.name | test("^c-.*-s"))] | length == 0' >/dev/null \
  || fail "spare clones left in the gateway: $(oc volume list --json --target "gw$ID" | jq -c '[.[].name]')"
! grep -q " $FLAT_ROOT/s" /proc/self/mountinfo || fail "a spare's mount is left: $(grep " $FLAT_ROOT/s" /proc/self/mountinfo)"
snapshotter_start offcore-flat --node "$N" --catalog "$CAT" --mode flat --plain-http

# The lazy image gone and the offcore snapshotter, the image service and the
# chunk cache stopped and emptied, so the next pull starts cold. The image
# goes while its snapshotter still runs, with containerd's GC waited for
# (--sync): a lazy GC left old snapshot records behind, and the next pull
# then named parents the fresh snapshotter never had.
lazy_image_cold() {
  $CTR image rm --sync "$REG/fid:lazy" >/dev/null
  snapshotter_stop offcore
  umount_below "$SN_DIR/offcore"
  oc dpu service del --name "$N" --service images >/dev/null
  umount_below "/run/offcore/$N/images"
  rm -rf "$SN_DIR/offcore" "/var/cache/offcore/$N"
}

step "layered (gateway back end)"
lazy_image_cold
snapshotter_start offcore --node "$N" --catalog "$CAT" --backend gateway
$CTR image pull --plain-http --snapshotter offcore "$REG/fid:lazy" >/dev/null
out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" run3$ID /bin/cat /data/link-rel)
[[ "$out" == *"user:x:1000"* ]] || fail "gateway-backed container printed '$out'"
oc image layers --node "$N" --json | jq -e '[.layers[].backend] | all(. == "gateway")' >/dev/null \
  || fail "layers were not served from the gateway"
rootfs_listing offcore "$lazy_top" "$work/layered-gw.txt"
diff -u "$work/ref.txt" "$work/layered-gw.txt" || fail "gateway-backed rootfs differs"

step "layer volumes are read-only snapshots that admit nodes only; no work volume is left"
oc volume list --json --target "gw$ID" > "$work/vols.json"
node_hosts='["nqn.2026-11.io.offcore:node:*"]'
jq -e --argjson h "$node_hosts" '[.[] | select(.name | startswith("l-"))] | length == 3 and
  all(.read_only and .allowed_hosts == $h)' "$work/vols.json" >/dev/null \
  || fail "layer volumes: $(jq -c '[.[] | {name, read_only, allowed_hosts}]' "$work/vols.json")"
jq -e --argjson h "$node_hosts" '[.[] | select(.name | startswith("f-"))] | length == 3 and
  all(.read_only and .allowed_hosts == $h)' "$work/vols.json" >/dev/null \
  || fail "flat snapshots: $(jq -c '[.[] | {name, read_only, allowed_hosts}]' "$work/vols.json")"
jq -e '[.[] | select(.name | test("^(lw|fw)-"))] | length == 0' "$work/vols.json" >/dev/null \
  || fail "work volumes left behind: $(jq -c '[.[].name]' "$work/vols.json")"

step "a node cannot write a layer volume"
l1=$(jq -r '[.[] | select(.name | startswith("l-"))][0].uri' "$work/vols.json")
oc disk attach "$l1" --node "$N" --name lx$ID >/dev/null
cleanup "\"$OFFCORE\" disk detach lx$ID --node $N --force"
dd if=/run/offcore/$N/disks/lx$ID of=/dev/null bs=4096 count=1 iflag=direct status=none || fail "a node cannot read a layer volume"
if dd if=/dev/zero of=/run/offcore/$N/disks/lx$ID bs=4096 count=1 conv=notrunc oflag=direct status=none 2>/dev/null; then
  fail "a node overwrote a block of a layer volume"
fi
oc disk detach lx$ID --node "$N" >/dev/null

step "a byte changed on the gateway's disk reads as an I/O error, never as content"
lazy_image_cold
gateway_stop
# Every copy of hello.sh's body in the pool: the layer volume's and the flat
# snapshot's. What a fabric host with write access could have done.
changed=$(python3 - "$work/gw-data/data.img" <<'PY'
import mmap, sys
with open(sys.argv[1], "r+b") as f, mmap.mmap(f.fileno(), 0) as m:
    n, at = 0, m.find(b"echo hello from offcore")
    while at >= 0:
        m[at + 5:at + 10] = b"PWNED"; n += 1
        at = m.find(b"echo hello from offcore", at + 1)
    m.flush(); print(n)
PY
)
assert_cmp "$changed" ">=" 1 "hello.sh's body was not found in the gateway's pool"
gateway_start "gw$ID" "$work/gw-data"
snapshotter_start offcore --node "$N" --catalog "$CAT" --backend gateway
# hello.sh is small enough for EROFS to inline it beside its inode, so the
# chunk holding it may be read when the layer mounts (the pull fails) or
# only when the file is (the run fails). Either way: EIO, no content.
if out=$($CTR image pull --plain-http --snapshotter offcore "$REG/fid:lazy" 2>&1); then
  out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" run4$ID /data/hello.sh 2>&1) && \
    fail "a container ran a tampered layer: '$out'"
fi
[[ "$out" != *PWNED* ]] || fail "tampered bytes reached the container: '$out'"
[[ "$out" == *"nput/output error"* ]] || fail "a tampered layer did not read as an I/O error: '$out'"
grep -q "does not match its sha256" "/run/offcore/$N/images.log" \
  || fail "the image service did not log the digest mismatch: $(tail -3 "/run/offcore/$N/images.log")"
echo "tampered layer refused: ${out:0:160}"
