#!/usr/bin/env bash
# The CSI driver (issue 17) end to end: `offcore csi --mode controller`
# over three storage hosts and `offcore csi --mode node` for a software-DPU
# node, driven over their sockets by the conformance cases
# (offcore-csi-sanity, tests/csi/sanity_cases.cc) with real mounts: volumes
# attached in the node's SoC, ext4 made and mounted on the host, bind
# mounts into two pod paths, block volumes; then with 2-replica volumes;
# then placement refused when a storage host is gone, leaving nothing.
# With OC_CLUSTER_STORE=etcd (csi_etcd_test.sh) the volumes' records and
# the CSI catalog are keys in a 3-member etcd on fabric hosts, and nothing
# is written under the cluster directory.
source "$(dirname "$0")/lib.sh"
SANITY=${OFFCORE_CSI_SANITY:-$(dirname "$OFFCORE")/../tests/offcore-csi-sanity}
[ -x "$SANITY" ] || fail "no offcore-csi-sanity at $SANITY (build it: ninja -C build tests/offcore-csi-sanity)"
N=cs$ID N2=ct$ID
A=gca$ID B=gcb$ID C=gcc$ID
work=$(mktemp -d /tmp/oc-csi-XXXX); cleanup "rm -rf $work"
netns_add "h$N"
export OFFCORE_CONFIG=$work/config.json
echo "{\"cluster_dir\": \"$work/cluster\"}" > "$OFFCORE_CONFIG"
STORE=${OC_CLUSTER_STORE:-dir}
if [ "$STORE" = etcd ]; then
  etcd_cluster_up "$work/etcd" "ea$ID" "eb$ID" "ec$ID"
  printf '{"cluster_dir": "%s/cluster", "cluster_store": "%s"}\n' "$work" "$ETCD_URL" > "$OFFCORE_CONFIG"
fi
gateways_up "$work" "$A" "$B" "$C"
node_up "$N" --host-netns "h$N" >/dev/null
# With its host side in the root namespace, $N2's SoC is also this shell's
# way to the fabric (etcd's members) for the CLI and the plugins.
node_up "$N2" >/dev/null
# The CSI catalog's entries: files, or keys in etcd.
catalog_entries() {
  if [ "$STORE" = etcd ]; then
    etcdctl_c get --prefix --keys-only /offcore/csi/v1/records/ | sed '/^$/d'
  else
    ls "$work/cluster/csi" 2>/dev/null || true
  fi
}
mkdir -p "$work/k8s"
# Mounts the cases make are below $work/k8s: whatever a failure leaves is lazily unmounted.
cleanup "grep -o \" $work/k8s[^ ]*\" /proc/self/mountinfo | sort -r | xargs -r -n1 umount -l"

# The plugins' pids live in files: the restart in the middle of a flow
# runs from the conformance binary (--between), outside this shell.
cat > "$work/plugins.sh" <<EOS
set -e
if [ "\$1" = stop ] || [ "\$1" = restart ]; then
  for f in "$work/ctl.pid" "$work/node.pid"; do
    [ -f "\$f" ] || continue
    p=\$(cat "\$f"); kill "\$p" 2>/dev/null || true
    for _ in \$(seq 100); do [ -e /proc/\$p ] || break; sleep 0.05; done
    rm -f "\$f"
  done
fi
if [ "\$1" = start ] || [ "\$1" = restart ]; then
  setsid "$OFFCORE" csi --mode controller --endpoint "unix://$work/ctl.sock" --pool "default=$A,$B,$C" \
    --pool "pair=$A,$B" >>"$work/ctl.log" 2>&1 < /dev/null & echo \$! > "$work/ctl.pid"
  setsid "$OFFCORE" csi --mode node --node "$N" --endpoint "$work/node.sock" >>"$work/node.log" 2>&1 < /dev/null &
  echo \$! > "$work/node.pid"
  for _ in \$(seq 100); do
    [ -S "$work/ctl.sock" ] && [ -S "$work/node.sock" ] && exit 0
    sleep 0.05
  done
  echo "the CSI plugins did not start" >&2; exit 1
fi
EOS
start_plugins() { bash "$work/plugins.sh" start || fail "$(tail -2 "$work/ctl.log" "$work/node.log")"; }
stop_plugins() { bash "$work/plugins.sh" stop; }
cleanup "stop_plugins"
start_plugins
[ "$(stat -c %a "$work/ctl.sock")" = 660 ] || fail "the controller socket is not 0660"

step "conformance cases, one replica, real mounts on node $N (and $N2 as the other node)"
loops_before=$(losetup -a | wc -l)
"$SANITY" --controller "$work/ctl.sock" --node "$work/node.sock" --work-dir "$work/k8s" --real-mounts \
  --other-node "$N2" --size $((64 << 20)) || fail "conformance cases failed (1 replica)"

step "nothing left behind: no volume, no catalog entry, no disk, no mount"
[ "$(oc volume list --replicated --json | jq length)" = 0 ] ||
  fail "volumes left behind: $(oc volume list --replicated --json | jq -c '[.[].name]'); $(tail -3 "$work/ctl.log")"
[ -z "$(catalog_entries)" ] || fail "catalog entries left behind: $(catalog_entries)"
[ -z "$(ls /run/offcore/$N/disks 2>/dev/null)" ] || fail "disks left attached: $(ls /run/offcore/$N/disks)"
! grep -q " $work/k8s" /proc/self/mountinfo || fail "mounts left behind under $work/k8s"
[ "$(losetup -a | wc -l)" = "$loops_before" ] || fail "loop devices left behind: $(losetup -a)"
for g in "$A" "$B" "$C"; do
  [ "$(oc volume list --target "$g" --json | jq length)" = 0 ] || fail "gateway $g keeps volumes"
done

step "the Kubernetes flow and snapshots with 2-replica volumes (the SoC mirrors them)"
"$SANITY" --controller "$work/ctl.sock" --node "$work/node.sock" --work-dir "$work/k8s" --real-mounts \
  --param replicas=2 --param pool=pair --gtest_filter='*Kubernetes*:*Snapshots*:*Idempotent*' ||
  fail "conformance cases failed (2 replicas)"

step "both plugins restarted while a 2-replica volume is staged and published: retries answered the same"
# The C++ client idles in system() during the restart, and only its backup
# poller (5 s by default) would read the servers' GOAWAY, so each server's
# graceful stop would wait that long for the idle connection: poll faster.
between="bash $work/plugins.sh restart"
if [ "$STORE" = etcd ]; then
  # Mid-flow, what etcd holds: the published volume's catalog entry and record.
  eps=$(echo "${ETCD_URL#etcd://}" | sed 's/\([^,]*\)/http:\/\/\1/g')
  between+=" && \"$OFFCORE\" fabric exec ${ETCD_HOSTS[0]} -- etcdctl --endpoints $eps get --prefix /offcore/csi/v1/records/ --print-value-only > $work/mid-flow.json"
fi
GRPC_CLIENT_CHANNEL_BACKUP_POLL_INTERVAL_MS=50 "$SANITY" --controller "$work/ctl.sock" --node "$work/node.sock" --work-dir "$work/k8s" --real-mounts \
  --param replicas=2 --between "$between" --gtest_filter='*Kubernetes*' ||
  fail "the flow failed across a plugin restart"
if [ "$STORE" = etcd ]; then
  jq -se 'length == 1 and .[0].ready and (.[0].published | length == 1) and .[0].parameters.replicas == "2"' \
    "$work/mid-flow.json" >/dev/null || fail "etcd did not hold the published volume's catalog entry: $(cat "$work/mid-flow.json")"
fi

step "storage host $C gone: 3 replicas cannot be placed, and nothing is made"
kill -9 "$C_PID"; wait "$C_PID" 2>/dev/null || true
"$SANITY" --controller "$work/ctl.sock" --node "$work/node.sock" --work-dir "$work/k8s" \
  --unplaceable-replicas 3 --gtest_filter='*MoreReplicas*' || fail "3 replicas on 2 live hosts were not refused"
grep -q "down: $C" "$work/ctl.log" || true
for g in "$A" "$B"; do
  [ "$(oc volume list --target "$g" --json | jq length)" = 0 ] || fail "a refused create left a volume on $g"
done
[ -z "$(catalog_entries)" ] || fail "a refused create left a catalog entry: $(catalog_entries)"

if [ "$STORE" = etcd ]; then
  step "the state was in etcd: nothing under the cluster directory"
  for d in csi volumes nexus; do
    [ ! -e "$work/cluster/$d" ] || fail "$work/cluster/$d was written with the cluster store on etcd: $(ls "$work/cluster/$d")"
  done
fi
