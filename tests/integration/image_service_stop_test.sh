#!/usr/bin/env bash
# A deliberate stop of the image service (issue 15, defect 2). While lazy
# layers are mounted, `dpu service del --service images` refuses and says
# what uses them; with --force (and through the agent's API, which has no
# refusal) the layers are cut off at once: a running container's reads fail
# instead of hanging, the fd keeper goes with the service, and the next
# `ctr run` gets a new image service from the snapshotter.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
lazy_fid_setup iss

services() { oc dpu service list --name "$N" --json | jq -r '[.[] | .name] | sort | join(",")'; }
images_pid() { oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="images") | .pid'; }

# A container that stays up, and reads its image on demand.
run_holder() {
  $CTR run -d --snapshotter offcore "$REG/fid:lazy" "$1" /bin/sh -c 'sleep 600' >/dev/null
  cleanup "$CTR task kill -s KILL $1"
}
# Reads an uncached file of the image in container $1; prints the exit code.
# 124 means the read hung (timeout).
read_in() {
  sync; echo 3 > /proc/sys/vm/drop_caches
  local rc=0
  timeout 30 $CTR task exec --exec-id "r$RANDOM$RANDOM" "$1" /bin/cat /data/deep/a/b/leaf >"$work/read.out" 2>&1 ||
    rc=$?
  echo "$rc"
}

step "a container runs on the lazy image; the image service and its keeper serve it"
run_holder holder$ID
[ "$(read_in holder$ID)" = 0 ] || fail "the container cannot read its image: $(cat "$work/read.out")"
[ "$(services)" = "images,images-fds" ] || fail "services are '$(services)', expected images,images-fds"
oc dpu service list --name "$N" --json | jq -e '.[] | select(.name=="images-fds") | .part_of == "images"' >/dev/null ||
  fail "the fd keeper is not recorded as part of the image service"

step "del without --force refuses while layers are mounted, naming them"
pid=$(images_pid)
expect_fail "--force" oc dpu service del --name "$N" --service images
err=$(oc dpu service del --name "$N" --service images 2>&1 >/dev/null || true)
[[ "$err" == *"lazy layer"*"in use by mounts"*"sha256:"* ]] || fail "the refusal does not name the layers: $err"
[ "$(images_pid)" = "$pid" ] || fail "the refused del still touched the image service"
[ "$(read_in holder$ID)" = 0 ] || fail "the container cannot read after a refused del: $(cat "$work/read.out")"

step "del --force cuts the layers off at once: reads fail, they do not hang"
t0=$(date +%s%N)
timeout 30 "$OFFCORE" dpu service del --name "$N" --service images --force >/dev/null ||
  fail "del --force failed or hung (exit $?)"
ms=$(( ($(date +%s%N) - t0) / 1000000 ))
assert_cmp "$ms" "<" 10000 "del --force took $ms ms"
[ -z "$(services)" ] || fail "services left after del --force: '$(services)' (the keeper must go with the service)"
rc=$(read_in holder$ID)
[ "$rc" != 124 ] || fail "a read in the running container hangs after the image service was stopped"
[ "$rc" != 0 ] || fail "a read in the cut-off container succeeded; it cannot have come through the dead layer"
echo "the cut-off container's read failed at once (exit $rc): $(head -c 200 "$work/read.out")"

step "the next container gets a new image service from the snapshotter"
out=$(timeout 60 $CTR run --rm --snapshotter offcore "$REG/fid:lazy" new$ID /data/hello.sh) ||
  fail "a new container failed or hung after the image service was stopped (exit $?)"
[ "$out" = "hello from offcore" ] || fail "a new container printed '$out'"
[ "$(services)" = "images,images-fds" ] || fail "the snapshotter did not start the image service and keeper: '$(services)'"

step "the agent's own API stops it the same way (no refusal there, no hang either)"
run_holder holder2$ID
[ "$(read_in holder2$ID)" = 0 ] || fail "the second container cannot read its image: $(cat "$work/read.out")"
timeout 30 curl -sf --unix-socket "/run/offcore/$N/api.sock" -X DELETE "http://agent/v1/services/images" >/dev/null ||
  fail "DELETE /v1/services/images failed or hung"
[ -z "$(services)" ] || fail "services left after the API's DELETE: '$(services)'"
rc=$(read_in holder2$ID)
[ "$rc" != 124 ] || fail "a read hangs after the API stopped the image service"
out=$(timeout 60 $CTR run --rm --snapshotter offcore "$REG/fid:lazy" new2$ID /data/hello.sh) ||
  fail "a container after the API's DELETE failed or hung (exit $?)"
[ "$out" = "hello from offcore" ] || fail "a container after the API's DELETE printed '$out'"
