#!/usr/bin/env bash
# Restart safety (test 3 of the image issue): a container keeps
# reading files of a lazily loaded image while the snapshotter, then the
# image service in the SoC, is killed
# (SIGKILL) and restarted. The container is unharmed, its reads never fail,
# the snapshots are still there, and a new container starts afterwards.
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/images_lib.sh"
lazy_fid_setup irs

step "a container reads the image in a loop"
$CTR run -d --snapshotter offcore "$REG/fid:lazy" reader$ID /bin/sh -c \
  'i=0; while true; do cat /data/keep/a /data/sparse /bin/busybox /etc/passwd >/dev/null || echo fail >> /tmp/fails; i=$((i+1)); echo $i > /tmp/count; sleep 0.05; done' >/dev/null
cleanup "$CTR task kill -s KILL reader$ID"
# The reader's loop counter. An exec can fail on its own (containerd busy):
# retry, and say why if it never works.
count() {
  local out
  for _ in 1 2 3; do
    out=$($CTR task exec --exec-id "c$RANDOM$RANDOM" reader$ID /bin/cat /tmp/count 2>"$work/count.err") &&
      [ -n "$out" ] && { echo "$out"; return 0; }
    sleep 0.2
  done
  fail "cannot read the reader's counter: $(cat "$work/count.err")"
}
sleep 1
before=$(count)
[ "$before" -gt 0 ] || fail "the reader is not looping"

step "kill -9 the snapshotter, restart it"
kill -9 "$SN_PID_offcore"; wait "$SN_PID_offcore" 2>/dev/null || true; SN_PID_offcore=
sleep 1
snapshotter_start offcore --node "$N" --catalog "$CAT" --plain-http
sleep 1
after=$(count)
assert_cmp "$after" ">" "$before" "the reader stopped while the snapshotter was down"
$CTR task ls | awk -v t="reader$ID" '$1 == t {print $3}' | grep -q RUNNING || fail "the reader is not running"
fails=$($CTR task exec --exec-id "f$RANDOM" reader$ID /bin/sh -c 'cat /tmp/fails 2>/dev/null | wc -l')
[ "$fails" -eq 0 ] || fail "the reader saw $fails failed reads"

step "the snapshots survived and a new container starts"
# (Not `| grep -q`: grep's early exit would fail the pipeline with SIGPIPE.)
$CTR snapshots --snapshotter offcore ls > "$work/snapshots.txt"
grep -q Committed "$work/snapshots.txt" || fail "committed snapshots are gone"
out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" new$ID /data/hello.sh)
[ "$out" = "hello from offcore" ] || fail "a new container printed '$out'"


step "kill -9 the image service: its connections survive in the fd keeper"
old_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="images") | .pid')
kill -9 "$old_pid"
for _ in $(seq 100); do
  new_pid=$(oc dpu service list --name "$N" --json | jq -r '.[] | select(.name=="images" and .state=="running") | .pid')
  [ -n "$new_pid" ] && [ "$new_pid" != "$old_pid" ] && [ -S "/run/offcore/$N/images.sock" ] && break
  sleep 0.1
done
[ -n "$new_pid" ] && [ "$new_pid" != "$old_pid" ] || fail "the agent did not restart the image service"
# (The dead process's socket file is still there: wait for the takeover itself.)
for _ in $(seq 100); do
  grep -q "took over layer" "/run/offcore/$N/images.log" && break
  sleep 0.1
done
grep -q "took over layer" "/run/offcore/$N/images.log" || fail "the new image service did not take the layers over"
# Everything the reader touches must now come through the new service.
sync; echo 3 > /proc/sys/vm/drop_caches
sleep 1
out=$($CTR task exec --exec-id "u$RANDOM" reader$ID /bin/cat /data/deep/a/b/leaf /data/hl2)
[ "$out" = "$(printf 'leaf\nhard linked')" ] || fail "uncached reads in the running container after the restart gave '$out'"
fails=$($CTR task exec --exec-id "g$RANDOM" reader$ID /bin/sh -c 'cat /tmp/fails 2>/dev/null | wc -l')
[ "$fails" -eq 0 ] || fail "the reader saw $fails failed reads across the image service restart"
c1=$(count); sleep 1; c2=$(count)
assert_cmp "$c2" ">" "$c1" "the reader stopped after the image service restart"
out=$($CTR run --rm --snapshotter offcore "$REG/fid:lazy" new2$ID /bin/cat /data/opq/new)
[ "$out" = "new in layer 1" ] || fail "a container after the image service restart printed '$out'"
