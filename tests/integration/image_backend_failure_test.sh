#!/usr/bin/env bash
# Back-end failures under a lazily loaded image (test 4 of the image issue):
# with the registry (then the gateway) stopped mid-run, cached reads still
# succeed, uncached reads fail with EIO within the documented fetch timeout
# (+1 s), later uncached reads of the down back end (any layer) fail at once,
# and reads recover once the back end returns; the same inside a running
# container. A corrupted chunk in the registry is detected: the reader gets
# EIO, never wrong bytes.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
N=ibf$ID
work=$(mktemp -d /var/tmp/oc-ibf-XXXX); cleanup "rm -rf $work"
CAT=$work/catalog CD_DIR=$work/cd SN_DIR=$work/sn
mkdir -p "$CD_DIR" "$SN_DIR"
TIMEOUT=3

node_up "$N" >/dev/null
registry_up "reg$ID" "$work/registry"
gateway_up "gw$ID" "$work/gw-data"
cleanup "rm -rf /var/cache/offcore/$N"
cleanup "umount_below /run/offcore/$N/images"
cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
cleanup "umount_below $work/mnt"

python3 "$IMG_DIR/make_fidelity_image.py" "$work/layout" v1 --with-big-files
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/fid:v1"
oc image convert "$REG/fid:v1" --to registry --to "nvme-tcp://$GW_IP:4420" --dest "$REG/fid:lazy" --plain-http \
  --catalog "$CAT" --chunk-size 64K --json > "$work/convert.json"

# attach_and_mount BACKEND: attaches the image's layers, mounts each EROFS
# at $work/mnt/lN.
attach_and_mount() {
  umount_below "$work/mnt"
  oc dpu service del --name "$N" --service images >/dev/null 2>&1 || true
  umount_below "/run/offcore/$N/images"
  rm -rf "/var/cache/offcore/$N"
  oc image attach "$REG/fid:lazy" --node "$N" --backend "$1" --catalog "$CAT" --fetch-timeout "$TIMEOUT" \
    --plain-http --no-prefetch --json > "$work/attach.json"
  local i=0
  for f in $(jq -r '.[].file' "$work/attach.json"); do
    mkdir -p "$work/mnt/l$i"
    mount -t erofs -o ro "$f" "$work/mnt/l$i"
    i=$((i + 1))
  done
}

drop_caches() { sync; echo 3 > /proc/sys/vm/drop_caches; }

# timed_read FILE: prints "ok <sha>" or "error <message>" and the seconds taken.
timed_read() {
  local t0 t1 r
  t0=$(date +%s.%N)
  if r=$(sha256sum "$1" 2>&1); then r="ok ${r%% *}"; else r="error $r"; fi
  t1=$(date +%s.%N)
  echo "$r $(echo "$t1 - $t0" | bc)"
}

for backend in registry gateway; do
  step "$backend: cached reads survive the back end going away"
  attach_and_mount "$backend"
  cached=$work/mnt/l1/etc/passwd      # layer 1
  uncached=$work/mnt/l0/bin/busybox   # 2 MB in layer 0, never read before
  want=$(sha256sum /bin/busybox | cut -d' ' -f1)
  sha256sum "$cached" >/dev/null
  if [ "$backend" = registry ]; then registry_stop; else gateway_stop; fi
  drop_caches
  r=$(timed_read "$cached"); echo "cached: $r"
  [[ "$r" == ok* ]] || fail "$backend down: a cached read failed: $r"

  step "$backend: uncached reads fail with EIO within the fetch timeout"
  r=$(timed_read "$uncached"); echo "uncached: $r"
  [[ "$r" == error* ]] || fail "$backend down: an uncached read succeeded: $r"
  [[ "$r" == *"Input/output error"* ]] || fail "$backend down: the error is not EIO: $r"
  assert_cmp "${r##* }" "<" "$((TIMEOUT + 1))" "the read blocked longer than the documented timeout"

  step "$backend: while it is known down, other uncached reads (another layer too) fail at once"
  for f in "$uncached" "$work/mnt/l2/data/big1"; do
    r=$(timed_read "$f"); echo "again: $r"
    [[ "$r" == *"Input/output error"* ]] || fail "$backend down: $f did not fail with EIO: $r"
    assert_cmp "${r##* }" "<" 1 "a read from a back end known down waited"
  done
  [ "$(oc image layers --node "$N" --json | jq -r '[.layers[].backend_state] | unique | join(",")')" = down ] \
    || fail "image layers does not show every layer's back end down: $(oc image layers --node "$N" --json)"

  step "$backend: reads recover once it returns"
  if [ "$backend" = registry ]; then registry_start "$REG_HOST" "$REG_DIR"
  else gateway_start "gw$ID" "$work/gw-data"; fi
  drop_caches
  ok=""
  for _ in $(seq 30); do
    r=$(timed_read "$uncached")
    if [[ "$r" == ok* ]]; then ok=1; break; fi
    sleep 1
  done
  [ -n "$ok" ] || fail "$backend back: reads did not recover: $r"
  [ "$(oc image layers --node "$N" --json | jq -r '[.layers[].backend_state] | unique | join(",")')" = up ] \
    || fail "image layers still shows a back end down after recovery"
  [ "$(echo "$r" | awk '{print $2}')" = "$want" ] || fail "$backend back: wrong content"
done

step "inside a running container: an uncached read fails within the fetch timeout, then at once"
umount_below "$work/mnt"
oc dpu service del --name "$N" --service images >/dev/null 2>&1 || true
umount_below "/run/offcore/$N/images"; rm -rf "/var/cache/offcore/$N"
# The registry (auto would take the gateway copy), nothing fetched ahead:
# the reads below must reach the registry.
snapshotter_start offcore --node "$N" --catalog "$CAT" --plain-http --fetch-timeout "$TIMEOUT" --fill-below 0 \
  --backend registry \
  --no-prefetch
containerd_up "$CD_DIR"
cleanup "umount_below $SN_DIR"
cleanup "snapshotter_stop offcore"
$CTR image pull --plain-http --snapshotter offcore "$REG/fid:lazy" >/dev/null
$CTR run -d --snapshotter offcore "$REG/fid:lazy" "ibf$ID" /bin/sleep 600 >/dev/null
cleanup "$CTR task kill -s KILL ibf$ID 2>/dev/null; sleep 0.3; $CTR task delete -f ibf$ID 2>/dev/null; $CTR containers delete ibf$ID 2>/dev/null"
# in_container FILE: "ok <sha>" or "error <message>", and the seconds taken.
in_container() {
  local t0 t1 r
  t0=$(date +%s.%N)
  if r=$($CTR task exec --exec-id "r$RANDOM" "ibf$ID" /bin/sha256sum "$1" 2>&1); then r="ok ${r%% *}"
  else r="error $(echo "$r" | tr '\n' ' ')"; fi
  t1=$(date +%s.%N)
  echo "$r $(echo "$t1 - $t0" | bc)"
}
want1=$(python3 "$IMG_DIR/make_fidelity_image.py" --big-file big1 | sha256sum | cut -d' ' -f1)
want2=$(python3 "$IMG_DIR/make_fidelity_image.py" --big-file big2 | sha256sum | cut -d' ' -f1)
r=$(in_container /data/keep/a); echo "a small file: $r"
[[ "$r" == ok* ]] || fail "the container cannot read its rootfs: $r"
registry_stop
r=$(in_container /data/big1); echo "uncached, registry down: $r"
[[ "$r" == *"Input/output error"* ]] || fail "an uncached read in the container did not fail with EIO: $r"
assert_cmp "${r##* }" "<" "$((TIMEOUT + 1))" "the container's read blocked longer than the fetch timeout + 1 s"
r=$(in_container /data/big2); echo "another uncached file: $r"
[[ "$r" == *"Input/output error"* ]] || fail "a second uncached read did not fail with EIO: $r"
assert_cmp "${r##* }" "<" 1 "a read from a registry known down waited"
registry_start "$REG_HOST" "$REG_DIR"
ok=""
for _ in $(seq 20); do
  r1=$(in_container /data/big1); r2=$(in_container /data/big2)
  if [[ "$r1" == ok* && "$r2" == ok* ]]; then ok=1; break; fi
  sleep 0.5
done
[ -n "$ok" ] || fail "reads in the container did not recover: $r1 / $r2"
[ "$(echo "$r1" | awk '{print $2}')" = "$want1" ] || fail "wrong bytes in /data/big1 after recovery"
[ "$(echo "$r2" | awk '{print $2}')" = "$want2" ] || fail "wrong bytes in /data/big2 after recovery"
$CTR task kill -s KILL "ibf$ID" >/dev/null 2>&1 || true
sleep 0.3
$CTR task delete -f "ibf$ID" >/dev/null 2>&1 || true
$CTR containers delete "ibf$ID" >/dev/null 2>&1 || true
snapshotter_stop offcore
umount_below "$SN_DIR"

step "a corrupted chunk in the registry is detected"
top_diff=$(jq -r '.layers[2].diff_id' "$work/convert.json")
data_digest=$(jq -r --arg d "$top_diff" '.layers[$d].registry.chunk_data' "$CAT/catalog.json")
blob=$(find "$work/registry/storage" -path "*/blobs/sha256/*/${data_digest#sha256:}/data")
[ -f "$blob" ] || fail "no registry blob for $data_digest"
# Flip bytes throughout the blob, keeping its length.
size=$(stat -c %s "$blob")
for off in $(seq 0 4096 $((size - 1))); do printf '\xff\xfe\xfd\xfc' | dd of="$blob" bs=1 seek="$off" conv=notrunc status=none; done
oc dpu service del --name "$N" --service images >/dev/null
umount_below "/run/offcore/$N/images"; rm -rf "/var/cache/offcore/$N"
oc image attach "$REG/fid:lazy" --node "$N" --backend registry --catalog "$CAT" --plain-http --no-prefetch \
  --fetch-timeout "$TIMEOUT" --json > "$work/attach.json"
top_file=$(jq -r '.[2].file' "$work/attach.json")
if dd if="$top_file" of=/dev/null bs=64k iflag=direct 2>"$work/dd.err"; then fail "a corrupted layer read without error"; fi
grep -q "Input/output error" "$work/dd.err" || fail "corruption gave '$(cat "$work/dd.err")', not EIO"
errors=$(oc image layers --node "$N" --json | jq '[.layers[].stats.fetch_errors] | add')
echo "fetch errors after corruption: $errors"
assert_cmp "$errors" ">" 0 "corruption went unnoticed"
grep -q "sha256 mismatch\|does not match\|corrupt\|decompress" "/run/offcore/$N/images.log" \
  || fail "the image service log does not name the corruption"
