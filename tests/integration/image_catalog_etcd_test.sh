#!/usr/bin/env bash
# The image catalog in the cluster's etcd (docs/ETCD.md, "The image
# catalog"): with cluster_store set and no --catalog, `image convert` writes
# one key per record under /offcore/images/v1/, and containerd's pulls and
# containers work through the snapshotter and the node's image service,
# which read it from etcd (the service from its SoC, over the fabric). A
# member down changes nothing; a record another writer damaged is a
# one-line error and is never overwritten.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"

T=$(mktemp -d /var/tmp/oc-icat-XXXX); cleanup "rm -rf $T"
etcd_cluster_up "$T/etcd" "ia$ID" "ib$ID" "ic$ID"
printf '{"cluster_dir": "%s/cluster", "cluster_store": "%s"}\n' "$T" "$ETCD_URL" > "$T/config.json"
export OFFCORE_CONFIG=$T/config.json

# As lazy_stack_setup, without --catalog: the catalog is the cluster store.
N=icat$ID work=$T CD_DIR=$T/cd SN_DIR=$T/sn
mkdir -p "$SN_DIR" "$CD_DIR"
keep_logs "$work"
node_up "$N" >/dev/null
registry_up "reg$ID" "$work/registry"
snapshotter_start offcore --node "$N" --plain-http
containerd_up "$CD_DIR"
cleanup "rm -rf /var/cache/offcore/$N"
cleanup "umount_below /run/offcore/$N/images"
cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
cleanup "umount_below $SN_DIR"
cleanup "snapshotter_stop offcore"

step "convert into the etcd catalog: one key per record, outside the agents' prefix"
python3 "$IMG_DIR/make_fidelity_image.py" "$work/layout" v1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/fid:v1"
oc image convert "$REG/fid:v1" --to registry --dest "$REG/fid:lazy" --plain-http >/dev/null
etcdctl_c get --prefix --keys-only /offcore/images/v1/ | sed '/^$/d' > "$T/keys.txt"
grep -qx "/offcore/images/v1/images/$REG/fid:v1" "$T/keys.txt" || fail "no image record in etcd: $(cat "$T/keys.txt")"
layers=$(grep -c '^/offcore/images/v1/layers/sha256:' "$T/keys.txt" || true)
[ "$layers" -ge 2 ] || fail "expected a record per layer, found $layers"
[ -z "$(etcdctl_c get --prefix --keys-only /offcore/v1/images)" ] || fail "catalog keys under the watched prefix"
oc image list --json | jq -e --arg r "$REG/fid:v1" 'any(.[]; .ref == $r)' >/dev/null ||
  fail "image list does not read etcd: $(oc image list --json 2>&1 | jq -c '[.[].ref]')"
[ "$(oc image list --catalog "$T/empty" --json | jq length)" = 0 ] || fail "--catalog DIR is not honoured"

step "containerd pulls and runs it from the etcd catalog"
$CTR image pull --plain-http --snapshotter offcore "$REG/fid:lazy" >/dev/null
out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" a$ID /data/hello.sh)
[ "$out" = "hello from offcore" ] || fail "the container printed '$out'"
svc_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="images") | .pid')
tr '\0' ' ' < "/proc/$svc_pid/cmdline" | grep -q -- "--catalog $ETCD_URL" ||
  fail "the image service does not read the etcd catalog: $(tr '\0' ' ' < "/proc/$svc_pid/cmdline")"

step "one member down: a second image converts, pulls and runs"
etcd_kill "ib$ID"
base=$work/base2 img=$work/img2; mkdir -p "$base/bin" "$img/etc"
cp /bin/busybox "$base/bin/busybox"; ln -s busybox "$base/bin/sh"; ln -s busybox "$base/bin/cat"
echo "second image $ID" > "$img/etc/greeting"
python3 "$IMG_DIR/make_dir_image.py" "$work/layout2" v1 '{"Cmd":["/bin/sh"]}' "$base" "$img"
skopeo copy -q --dest-tls-verify=false "oci:$work/layout2:v1" "docker://$REG/two:v1"
oc image convert "$REG/two:v1" --to registry --dest "$REG/two:lazy" --plain-http >/dev/null
$CTR image pull --plain-http --snapshotter offcore "$REG/two:lazy" >/dev/null
out=$($CTR run --rm --snapshotter offcore "$REG/two:lazy" b$ID /bin/sh -c 'cat /etc/greeting' 2>&1) ||
  fail "the second image did not run: $out"
[ "$out" = "second image $ID" ] || fail "the second image printed '$out'"
oc image list --json | jq -e --arg r "$REG/two:v1" 'any(.[]; .ref == $r)' >/dev/null ||
  fail "image list with a member down: $(oc image list 2>&1)"

step "a damaged record is a one-line error and is never overwritten"
diff=$(oc image list --json | jq -r --arg r "$REG/two:v1" '.[] | select(.ref==$r) | .diff_ids[1]')
key=/offcore/images/v1/layers/$diff
etcdctl_c put "$key" '{"diff_id": "x", "fs_bytes": "big"}' >/dev/null
# (The progress bar shares stderr: the error is its last line.)
if oc image convert "$REG/two:v1" --to registry --dest "$REG/two:lazy" --plain-http 2>"$T/err.txt" >/dev/null; then
  fail "convert over a damaged record succeeded"
fi
err=$(tail -1 "$T/err.txt")
[[ $err == "offcore: image convert: layer $diff in the catalog is malformed (fs_bytes "* ]] || fail "the error was: $err"
echo "ok (refused): $err"
[ "$(etcdctl_c get --print-value-only "$key")" = '{"diff_id": "x", "fs_bytes": "big"}' ] || fail "the damaged record was overwritten"
etcdctl_c del "$key" >/dev/null
oc image convert "$REG/two:v1" --to registry --dest "$REG/two:lazy" --plain-http >/dev/null
[ "$(etcdctl_c get --print-value-only "$key" | jq -r .diff_id)" = "$diff" ] || fail "convert did not make the record again"
