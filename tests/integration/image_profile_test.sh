#!/usr/bin/env bash
# Prefetch profiles: `offcore image profile` runs a command in the image once
# and stores the chunks it touched; a later attach prefetches exactly those
# in the background, so the same command then reads without fetching.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
N=ipf$ID
work=$(mktemp -d /var/tmp/oc-ipf-XXXX); cleanup "rm -rf $work"
CAT=$work/catalog
keep_logs "$work"

node_up "$N" >/dev/null
registry_up "reg$ID" "$work/registry"
cleanup "rm -rf /var/cache/offcore/$N"
cleanup "umount_below /run/offcore/$N/images"
cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
cleanup "umount_below $work/mnt"

python3 "$IMG_DIR/make_fidelity_image.py" "$work/layout" v1
skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/fid:v1"
oc image convert "$REG/fid:v1" --to registry --dest "$REG/fid:lazy" --plain-http --catalog "$CAT" \
  --chunk-size 16K --json > "$work/convert.json"

step "profile a command"
oc image profile "$REG/fid:v1" --node "$N" --catalog "$CAT" --backend registry -- /bin/busybox cat /data/keep/a \
  > "$work/profile.txt"
cat "$work/profile.txt" | tail -4
grep -q "^BBBB" "$work/profile.txt" || fail "the profiled command did not run"
total=$(jq '[.layers[].profile | length] | add' "$CAT/catalog.json")
assert_cmp "$total" ">" 0 "no chunks were recorded"

step "a fresh attach prefetches the profile before anything reads"
oc dpu service del --name "$N" --service images >/dev/null
umount_below "/run/offcore/$N/images"; rm -rf "/var/cache/offcore/$N"
oc image attach "$REG/fid:v1" --node "$N" --backend registry --catalog "$CAT" --plain-http --json > "$work/attach.json"
for _ in $(seq 50); do
  done_=$(oc image layers --node "$N" --json | jq '[.layers[].stats.prefetched] | add')
  [ "$done_" -ge "$total" ] && break
  sleep 0.2
done
assert_cmp "$done_" ">=" "$total" "prefetch did not fetch the profile"
fetches=$(oc image layers --node "$N" --json | jq '[.layers[].stats.chunk_fetches] | add')

step "the profiled command now reads without new fetches"
i=0 lower=""
for f in $(jq -r '.[].file' "$work/attach.json"); do
  mkdir -p "$work/mnt/l$i"; mount -t erofs -o ro "$f" "$work/mnt/l$i"
  lower="$work/mnt/l$i${lower:+:$lower}"; i=$((i + 1))
done
mkdir -p "$work/mnt/root"
mount -t overlay overlay -o "lowerdir=$lower" "$work/mnt/root"
sync; echo 3 > /proc/sys/vm/drop_caches
head -c 4 "$work/mnt/root/data/keep/a" | grep -q BBBB || fail "wrong content"
after=$(oc image layers --node "$N" --json | jq '[.layers[].stats.chunk_fetches] | add')
echo "fetches: $fetches after prefetch, $after after the read"
[ "$after" -eq "$fetches" ] || fail "the profiled read still fetched $((after - fetches)) chunks"
