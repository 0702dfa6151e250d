#!/usr/bin/env bash
# Cold-start driver for `offcore bench coldstart` (src/bench/coldstart_suite.cc
# runs it and turns its output into the report). Appends one JSON object per
# measurement to RESULTS_FILE; progress goes to stderr.
#
#   coldstart.sh RESULTS_FILE RUNS IMAGES...  IMAGES from small python numpy gcc jvm node
#
# Variants, each cold (page cache dropped, fresh containerd content store,
# fresh snapshotter root, empty chunk cache, image service restarted with
# the stack), none with a profile (`image profile` is never run):
#   overlayfs              containerd's overlayfs snapshotter, full pull then run
#   registry-noprefetch    offcore layered from the registry, nothing fetched ahead
#                          (snapshotter --no-prefetch --fill-below 0)
#   registry               offcore layered from the registry, defaults: the prefetch
#                          list derived at conversion, small layers filled
#   gateway-noprefetch     the same two from the storage gateway (NVMe/TCP)
#   gateway
#   flat-gateway           offcore flat, a writable clone volume per container
# Each image's config runs its workload (scripts/bench-images.sh).
#
# For experiments (the suite sets none of these): VARIANTS="registry ..."
# runs only those; CHUNK=64K converts with that registry chunk size; with
# REGISTRY_ONLY=1 nothing goes to the gateway (no gateway or flat variants);
# NO_FLAT_SPARE=1 runs the flat snapshotter without spare rootfs.
# Everything runs against a registry and a gateway on fabric hosts, reached
# through the node's SoC.
set -euo pipefail
RESULTS=$1 RUNS=$2; shift 2
IMAGES=("$@")
HERE=$(cd "$(dirname "$0")" && pwd)
source "$HERE/../../tests/integration/lib.sh"
source "$HERE/../../tests/integration/images_lib.sh"
trap - EXIT
trap 'for (( i=${#CLEANUPS[@]}-1; i>=0; i-- )); do eval "${CLEANUPS[$i]}" >/dev/null 2>&1 || true; done' EXIT
exec 3>>"$RESULTS" 1>&2
# A failed step (in a function too: -E) says where, with what the
# snapshotters logged last.
set -E
trap 'echo "coldstart.sh: line $LINENO failed; the snapshotters last logged:"; tail -n 8 "$SN_DIR"/*.log 2>/dev/null' ERR
CACHE=${BENCH_IMAGES:-/var/cache/offcore/bench-images-v2}
N=cs$ID
work=$(mktemp -d /var/tmp/oc-coldstart-XXXX); cleanup "rm -rf $work"
CD_DIR=$work/cd SN_DIR=$work/sn CAT=$work/catalog
mkdir -p "$SN_DIR"

node_up "$N" --soc-cpus 1 --host-cpus 0 >/dev/null
registry_up "reg$ID" "$work/registry"
gateway_up "gw$ID" "$work/gw-data"
GW="nvme-tcp://$GW_IP:4420"

step "push and convert ${IMAGES[*]}"
for img in "${IMAGES[@]}"; do
  [ -f "$CACHE/$img/index.json" ] || fail "benchmark image $img is missing; run scripts/bench-images.sh"
  skopeo copy -q --dest-tls-verify=false "oci:$CACHE/$img:latest" "docker://$REG/$img:latest"
  to=(--to registry); [ -n "${REGISTRY_ONLY:-}" ] || to+=(--to "$GW")
  oc image convert "$REG/$img:latest" "${to[@]}" --dest "$REG/$img:lazy" --plain-http --chunk-size "${CHUNK:-256K}" \
    --catalog "$CAT" --json > "$work/$img.convert.json"
  jq '[.layers[].compressed_bytes] | add' "$work/$img.convert.json" > "$work/$img.bytes"
  [ -n "${REGISTRY_ONLY:-}" ] ||
    oc image convert "$REG/$img:latest" --mode flat --to "$GW" --dest "$REG/$img:flat" --plain-http --catalog "$CAT" >&2
done

cgroup_host=/sys/fs/cgroup/cpuacct/offcore-bench-$ID
mem_host=/sys/fs/cgroup/memory/offcore-bench-$ID
mkdir -p "$cgroup_host" "$mem_host"
cleanup "rmdir $cgroup_host $mem_host"
soc_cpu=/sys/fs/cgroup/cpuacct/offcore/$N/soc/cpuacct.usage
soc_mem=/sys/fs/cgroup/memory/offcore/$N/soc/memory.max_usage_in_bytes

# Everything the host domain runs for a cold start (containerd, the
# snapshotters, ctr, shims, runc, the container) is started inside one
# cgroup, so its CPU and peak memory are measured whole.

start_stack() {  # start_stack BACKEND [SNAPSHOTTER FLAGS...]
  local backend=$1; shift
  rm -rf "$CD_DIR" "$SN_DIR"; mkdir -p "$CD_DIR" "$SN_DIR"
  ( echo $BASHPID > "$cgroup_host/cgroup.procs"; echo $BASHPID > "$mem_host/cgroup.procs"
    containerd_up "$CD_DIR" >/dev/null
    snapshotter_start offcore --node "$N" --catalog "$CAT" --backend "$backend" --plain-http "$@"
    snapshotter_start offcore-flat --node "$N" --catalog "$CAT" --mode flat --plain-http ${NO_FLAT_SPARE:+--flat-spares 0}
    echo "$CD_PID $SN_PID_offcore $SN_PID_offcore_flat" > "$work/pids" )
  read -r CD_PID SN_PID_offcore SN_PID_offcore_flat < "$work/pids"
  CTR="ctr --address $CD_DIR/containerd.sock"
}

stop_stack() {
  containerd_down "$CD_DIR" >/dev/null 2>&1 || true
  snapshotter_stop offcore; snapshotter_stop offcore-flat
  umount_below "$SN_DIR"
  for d in /run/offcore/$N/disks/c-*.json; do
    [ -e "$d" ] && oc disk detach "$(basename "${d%.json}")" --node "$N" --force >/dev/null 2>&1 || true
  done
  oc dpu service del --name "$N" --service images --force >/dev/null 2>&1 || true
  umount_below "/run/offcore/$N/images"
  rm -rf "/var/cache/offcore/$N"
}
cleanup "stop_stack"

now() { date +%s.%N; }
cpu_host() { awk '{print $1/1e9}' "$cgroup_host/cpuacct.usage"; }
cpu_soc() { awk '{print $1/1e9}' "$soc_cpu"; }
# Every byte a cold start pulls crosses the SoC's uplink: registry chunks,
# NVMe/TCP blocks, and the host's own pulls (routed through the SoC).
uplink_rx() { ip -n "oc-$N-soc" -s -j link show up0 | jq '.[0].stats64.rx.bytes'; }

# What no lazy loader can beat, measured on the overlayfs run (the image is
# then whole on local disk): the second container's create + first output
# with the page cache warm ("floor"), a third one's with it dropped, and
# how much of the unpacked image that cold start read (pages resident
# after it, fincore; kernel readahead included, as any local start pays).
floors() {  # floors IMAGE RUN T_CREATE_START (container n$RUN created)
  local img=$1 run=$2 t4=$3 out t6 t7 t8 snaps
  out=$( echo $BASHPID > "$cgroup_host/cgroup.procs"; $CTR task start "n$run" 2>&1 | head -1 )
  t6=$(now)
  [ -n "$out" ] || fail "overlayfs $img: no output from the second container"
  $CTR task delete --force "n$run" >/dev/null 2>&1 || true
  snaps=$CD_DIR/root/io.containerd.snapshotter.v1.overlayfs/snapshots
  [ -d "$snaps" ] || fail "no overlayfs snapshots under $snaps"
  sync; echo 3 > /proc/sys/vm/drop_caches
  t7=$(now)
  ( echo $BASHPID > "$cgroup_host/cgroup.procs"
    $CTR container create --snapshotter overlayfs "$REG/$img:latest" "m$run" >/dev/null )
  out=$( echo $BASHPID > "$cgroup_host/cgroup.procs"; $CTR task start "m$run" 2>&1 | head -1 )
  t8=$(now)
  [ -n "$out" ] || fail "overlayfs $img: no output from the cold local container"
  local read_b unpacked_b
  read_b=$(find "$snaps" -type f -print0 | xargs -0 -r fincore -b -n -r -o RES 2>/dev/null | awk '{s+=$1} END {print s+0}')
  unpacked_b=$(du -sb "$snaps" | awk '{print $1}')
  $CTR task delete --force "m$run" >/dev/null 2>&1 || true
  $CTR container delete "m$run" >/dev/null 2>&1 || true
  FLOORS=$(jq -cn --argjson w "$(echo "$t6 - $t4" | bc)" --argjson c "$(echo "$t8 - $t7" | bc)" \
    --argjson r "$read_b" --argjson u "$unpacked_b" \
    '{floor_warm_s:$w, floor_cold_s:$c, workload_read_bytes:$r, unpacked_bytes:$u}')
}

measure() {  # measure IMAGE VARIANT RUN
  local img=$1 variant=$2 run=$3 ref sn backend=registry flags=()
  local lazy=(--no-prefetch --fill-below 0)
  case $variant in
    overlayfs) ref=$REG/$img:latest sn=overlayfs ;;
    registry-noprefetch) ref=$REG/$img:lazy sn=offcore flags=("${lazy[@]}") ;;
    registry) ref=$REG/$img:lazy sn=offcore ;;
    gateway-noprefetch) ref=$REG/$img:lazy sn=offcore backend=gateway flags=("${lazy[@]}") ;;
    gateway) ref=$REG/$img:lazy sn=offcore backend=gateway ;;
    flat-gateway) ref=$REG/$img:flat sn=offcore-flat backend=gateway ;;
  esac
  start_stack "$backend" "${flags[@]}"
  # The node's image service runs before a container is asked for, like
  # containerd (the snapshotter starts it): wait for it outside the clock.
  if [ "$sn" = offcore ]; then
    for _ in $(seq 100); do [ -S "/run/offcore/$N/images.sock" ] && break; sleep 0.05; done
  fi
  sync; echo 3 > /proc/sys/vm/drop_caches
  echo 0 > "$mem_host/memory.max_usage_in_bytes" 2>/dev/null || true
  echo 0 > "$soc_mem" 2>/dev/null || true
  local h0 s0 rx0 t0 t1 t2 t3 out
  h0=$(cpu_host) s0=$(cpu_soc) rx0=$(uplink_rx) t0=$(now)
  ( echo $BASHPID > "$cgroup_host/cgroup.procs"; echo $BASHPID > "$mem_host/cgroup.procs"
    $CTR image pull --plain-http --snapshotter "$sn" "$ref" >/dev/null )
  t1=$(now)
  ( echo $BASHPID > "$cgroup_host/cgroup.procs"; echo $BASHPID > "$mem_host/cgroup.procs"
    $CTR container create --snapshotter "$sn" "$ref" "c$run" >/dev/null )
  t2=$(now)
  out=$( echo $BASHPID > "$cgroup_host/cgroup.procs"; echo $BASHPID > "$mem_host/cgroup.procs"
         $CTR task start "c$run" 2>&1 | head -1 )
  t3=$(now)
  [ -n "$out" ] || fail "$variant $img: no output"
  local h1 s1 rx1
  h1=$(cpu_host) s1=$(cpu_soc) rx1=$(uplink_rx)
  # flat-gateway (and its baseline): a second container of the image, created
  # once the first runs, as a node scaling out a Deployment would; the flat
  # snapshotter makes a spare rootfs for it in the meantime.
  local next=null t4 t5
  FLOORS='{}'
  if [ "$variant" = flat-gateway ] || [ "$variant" = overlayfs ]; then
    sleep 3
    t4=$(now)
    ( echo $BASHPID > "$cgroup_host/cgroup.procs"; echo $BASHPID > "$mem_host/cgroup.procs"
      $CTR container create --snapshotter "$sn" "$ref" "n$run" >/dev/null )
    t5=$(now)
    next=$(echo "$t5 - $t4" | bc)
    if [ "$variant" = overlayfs ]; then floors "$img" "$run" "$t4"; fi
    $CTR container delete "n$run" >/dev/null 2>&1 || true
  fi
  jq -cn --arg image "$img" --arg variant "$variant" --argjson run "$run" --arg out "$out" \
    --argjson pull "$(echo "$t1 - $t0" | bc)" --argjson create "$(echo "$t2 - $t1" | bc)" \
    --argjson ready "$(echo "$t3 - $t2" | bc)" --argjson first "$(echo "$t3 - $t0" | bc)" \
    --argjson fetched "$((rx1 - rx0))" --argjson image_bytes "$(cat "$work/$img.bytes")" \
    --argjson host_cpu "$(echo "$h1 - $h0" | bc)" --argjson soc_cpu "$(echo "$s1 - $s0" | bc)" \
    --argjson host_mem "$(cat "$mem_host/memory.max_usage_in_bytes")" --argjson soc_mem "$(cat "$soc_mem")" \
    --argjson next "$next" --argjson floors "$FLOORS" \
    '{image:$image, variant:$variant, run:$run, output:$out, pull_s:$pull, create_s:$create, ready_s:$ready,
      first_output_s:$first, fetched_bytes:$fetched, image_bytes:$image_bytes, host_cpu_s:$host_cpu,
      soc_cpu_s:$soc_cpu, host_peak_mem:$host_mem, soc_peak_mem:$soc_mem}
      + (if $next == null then {} else {next_create_s:$next} end) + $floors' >&3
  $CTR task delete "c$run" >/dev/null 2>&1 || true
  $CTR container delete "c$run" >/dev/null 2>&1 || true
  stop_stack
}

for run in $(seq "$RUNS"); do
  for img in "${IMAGES[@]}"; do
    for variant in ${VARIANTS:-overlayfs registry-noprefetch registry gateway-noprefetch gateway flat-gateway}; do
      step "run $run: $img $variant"
      measure "$img" "$variant" "$run"
    done
  done
done
