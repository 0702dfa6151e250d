#!/usr/bin/env bash
# `offcore demo` end to end (the README's first command):
#  1. every part runs and succeeds; its output carries the figures measured
#     in the run (4K randread IOPS on the disk and on a local file, pull
#     times and bytes for overlayfs and offcore, the failover time, cross-node
#     req/s beside the routed baseline, a kill -9
#     of the disk service under a verified write with 0 errors, a PVC
#     provisioned and mounted by two pods through the CSI plugins, the CPU
#     table and each step's duration), within the 5-minute budget;
#  2. SIGINT in the middle of the storage step (during fio) ends the demo
#     with 130 and removes everything it made;
#  3. so does a terminal's Ctrl-C (SIGINT to the whole process group, so the
#     clients the demo runs get it too) during the images step's pulls;
# and after each case nothing is left: network namespaces, mounts, loop
# devices, /run/offcore, containerd namespaces/snapshots, the scratch dir,
# the node's cgroups, processes the demo started.
source "$(dirname "$0")/lib.sh"
for t in fio mkfs.ext4 containerd ctr runc docker-registry skopeo umoci curl python3; do
  command -v "$t" >/dev/null || fail "$t missing: run scripts/setup.sh"
done
out=$(mktemp -d /tmp/oc-demo-test-XXXX); cleanup "rm -rf $out"
D=dt$ID
cleanup "\"$OFFCORE\" dpu down --name $D"
cleanup "\"$OFFCORE\" fabric host del ${D:0:6}-ext"

# What the demo could leave behind, as one listing (empty globs and greps
# are fine here, hence the subshell without -e/pipefail).
snapshot() (
  set +e +o pipefail
  echo "## netns"; ip netns list | awk '{print $1}' | sort
  echo "## mounts"; awk '{print $5}' /proc/self/mountinfo | sort
  echo "## loop"; losetup -a | cut -d: -f1,3 | sort
  echo "## run"; find /run/offcore 2>/dev/null | sort
  echo "## scratch"; ls -d /var/tmp/offcore-demo-* 2>/dev/null | sort
  echo "## cgroups"; ls -d /sys/fs/cgroup/*/offcore/* /sys/fs/cgroup/offcore/* 2>/dev/null | sort
  echo "## processes"; ps -eo args= | grep -E "offcore-demo|containerd --config /var/tmp|docker-registry serve /var/tmp/offcore-demo|target serve" \
    | grep -v grep | sort
  echo "## containerd"
  if [ -S /run/containerd/containerd.sock ]; then
    ctr namespaces ls -q 2>&1 | sort
    for ns in $(ctr namespaces ls -q 2>/dev/null); do ctr -n "$ns" snapshots ls 2>&1 | sort; ctr -n "$ns" images ls -q 2>&1 | sort; done
  else
    echo "(no system containerd)"
  fi
)
# Parses "LABEL ... N" figures out of the demo log.
figure() { sed -nE "$1" "$out/$2" | head -1; }

step "the whole demo"
snapshot > "$out/before.txt"
rc=0
"$OFFCORE" demo --name "$D" > "$out/demo.log" 2>&1 || rc=$?
cat "$out/demo.log"
[ "$rc" = 0 ] || fail "offcore demo exited $rc"
snapshot > "$out/after.txt"
diff -u "$out/before.txt" "$out/after.txt" || fail "the demo left something behind (diff above)"
assert_node_gone "$D"

step "the figures are there"
disk=$(figure 's/.*4K randread: ([0-9,]+) IOPS over NVMe\/TCP\+FUSE vs ([0-9,]+) IOPS local file.*/\1/p' demo.log | tr -d ,)
local_iops=$(figure 's/.*4K randread: ([0-9,]+) IOPS over NVMe\/TCP\+FUSE vs ([0-9,]+) IOPS local file.*/\2/p' demo.log | tr -d ,)
echo "IOPS: disk ${disk:-?} local ${local_iops:-?}"
assert_cmp "${disk:-0}" ">" 0 "disk IOPS"
assert_cmp "${local_iops:-0}" ">" 0 "local-file IOPS"
grep -q -- "-> match" "$out/demo.log" || fail "no checksum match line"
grep -qE "^disk service disk-[a-z0-9]+ \(pid [0-9]+\) killed with SIGKILL .* restarted it as pid [0-9]+, which took over" \
  "$out/demo.log" || fail "no disk-service crash line"
pause=$(figure 's/.*the host never noticed: fio finished in [0-9.]+ s with 0 errors, .* worst latency \(the pause\) ([0-9]+) ms.*/\1/p' demo.log)
echo "disk service crash: worst latency ${pause:-?} ms"
[ -n "$pause" ] || fail "no 0-error line after the disk service crash"
grep -q "the file written before the crash still reads md5" "$out/demo.log" || fail "no re-read after the crash"
ov_pull=$(figure 's/.*overlayfs \(containerd.s own, full pull\): pull ([0-9.]+) s.*/\1/p' demo.log)
oc_pull=$(figure 's/.*offcore lazy \(layers served by the SoC\): +pull ([0-9.]+) s.*/\1/p' demo.log)
echo "pull: overlayfs ${ov_pull:-?} s, offcore ${oc_pull:-?} s"
assert_cmp "${ov_pull:-0}" ">" 0 "overlayfs pull time"
assert_cmp "${oc_pull:-0}" ">" 0 "offcore pull time"
grep -qE "bytes fetched \(SoC uplink\): offcore [0-9.]+ MiB vs overlayfs [0-9.]+ MiB" "$out/demo.log" || fail "no bytes-fetched line"
[ "$(grep -c "printed '42'" "$out/demo.log")" = 2 ] || fail "the containers did not both print 42"
failover=$(figure 's/.*failover: ([0-9.]+) s from the stop.*/\1/p' demo.log)
echo "failover: ${failover:-?} s"
[ -n "$failover" ] || fail "no failover time"
assert_cmp "$failover" "<=" 2.0 "failover seconds"
grep -q "every request after that was answered" "$out/demo.log" || fail "requests still failed at the end of the loop"
for m in "keep-alive req/s" "new connection per request"; do
  grep -qE "^  $m +[0-9,]+ +[0-9,]+ +[0-9.]+x +offcore [0-9]+ us \([0-9]+% on the SoC's cpus\), routed [0-9]+ us" \
    "$out/demo.log" || fail "no cross-node '$m' row (offcore vs the routed baseline)"
done
grep -q "CPU seconds by domain, per step" "$out/demo.log" || fail "no CPU table"
grep -qE "^migrated to node .* downtime [0-9]+ ms, .* all 3000 acknowledged blocks read back and sha256 matches" \
  "$out/demo.log" || fail "no VM migration line"
grep -qE "^PVC pvc-demo-[0-9]+: CreateVolume [0-9.]+ s .* NodePublish to two pods [0-9.]+ s" "$out/demo.log" ||
  fail "no CSI provisioning line"
grep -qE "^pod1 wrote 64 MiB \(fsync\) in [0-9.]+ s, pod2 read the same sha256" "$out/demo.log" ||
  fail "the CSI step's pods did not share the volume"
grep -qE "^baseline, a local file: losetup \+ mkfs.ext4 \+ mount [0-9.]+ s" "$out/demo.log" || fail "no CSI baseline line"
for s in "node up" accounting fabric "agent restart" storage mirror csi images svc mesh vm total; do
  grep -qE "^$s +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9]+%" "$out/demo.log" || fail "CPU table has no row for '$s'"
  [ "$s" = total ] || grep -qE "^-- step $s: done in [0-9.]+ s" "$out/demo.log" || fail "no duration for step '$s'"
done
total=$(figure 's/^demo total: ([0-9.]+) s/\1/p' demo.log)
echo "demo total: ${total:-?} s"
assert_cmp "${total:-999}" "<=" 300 "demo seconds"

step "SIGINT in the middle of the storage step"
"$OFFCORE" demo --name "$D" --only storage > "$out/int.log" 2>&1 &
pid=$!
cleanup "kill $pid"
for _ in $(seq 600); do grep -q "^fio 4K random reads" "$out/int.log" && break; sleep 0.1; done
grep -q "^fio 4K random reads" "$out/int.log" || fail "the storage step never reached fio: $(tail -5 "$out/int.log")"
sleep 1
kill -INT "$pid"
t0=$(date +%s.%N)
rc=0; wait "$pid" || rc=$?
echo "demo ended $(echo "$(date +%s.%N) - $t0" | bc) s after SIGINT with exit $rc"
cat "$out/int.log"
[ "$rc" = 130 ] || fail "expected exit 130 after SIGINT, got $rc"
grep -q "cleanup storage:" "$out/int.log" || fail "the storage step did not report its cleanup"
grep -q "interrupted" "$out/int.log" || fail "the demo did not say it was interrupted"
snapshot > "$out/after-int.txt"
diff -u "$out/before.txt" "$out/after-int.txt" || fail "SIGINT left something behind (diff above)"
assert_node_gone "$D"

step "Ctrl-C (SIGINT to the process group) during the images step"
setsid "$OFFCORE" demo --name "$D" --only images > "$out/pg.log" 2>&1 &
pid=$!
cleanup "kill -- -$pid"
for _ in $(seq 1800); do grep -q "^cold pull" "$out/pg.log" && break; sleep 0.1; done
grep -q "^cold pull" "$out/pg.log" || fail "the images step never reached the pulls: $(tail -5 "$out/pg.log")"
sleep 1
kill -INT -- -"$pid"
rc=0; wait "$pid" || rc=$?
cat "$out/pg.log"
[ "$rc" = 130 ] || fail "expected exit 130 after Ctrl-C, got $rc"
grep -q "cleanup images:" "$out/pg.log" || fail "the images step did not report its cleanup"
snapshot > "$out/after-pg.txt"
diff -u "$out/before.txt" "$out/after-pg.txt" || fail "Ctrl-C left something behind (diff above)"
assert_node_gone "$D"
