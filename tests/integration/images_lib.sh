# Helpers for the image tests: a registry on a fabric host, a private
# containerd with the offcore proxy snapshotters, and the snapshotters.
# Source after lib.sh. Everything is named after $ID and torn down on exit.

IMG_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")/images" && pwd)

# registry_up HOST DIR: Debian's docker-registry on fabric host HOST, port
# 5000, storage under DIR. Sets REG_IP and REG (ADDR:PORT).
registry_up() {
  local host=$1 dir=$2
  oc fabric host add "$host" >/dev/null
  cleanup "\"$OFFCORE\" fabric host del $host"
  REG_IP=$(oc fabric host list --json | jq -r --arg h "$host" '.[] | select(.name==$h) | .ip'); REG_IP=${REG_IP%/*}
  REG=$REG_IP:5000
  mkdir -p "$dir/storage"
  cat > "$dir/config.yml" <<YML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $dir/storage}
  delete: {enabled: true}
http: {addr: "$REG"}
YML
  registry_start "$host" "$dir"
  cleanup "registry_stop"
}

registry_start() {
  setsid "$OFFCORE" fabric exec "$1" -- docker-registry serve "$2/config.yml" >>"$2/registry.log" 2>&1 &
  REG_PID=$!
  REG_HOST=$1 REG_DIR=$2
  for _ in $(seq 100); do
    curl -sf "http://$REG/v2/" >/dev/null && return 0
    sleep 0.1
  done
  fail "registry did not start: $(tail -3 "$2/registry.log")"
}

registry_stop() {
  [ -n "${REG_PID:-}" ] || return 0
  # fabric exec runs the registry as a child; end the whole session we started.
  kill -- -"$REG_PID" 2>/dev/null || kill "$REG_PID" 2>/dev/null || true
  wait "$REG_PID" 2>/dev/null || true
  REG_PID=
}

# containerd_up DIR: start the snapshotters first where possible: containerd
# dials a proxy plugin at start and backs off when its socket is missing.
# containerd with proxy snapshotters "offcore" and
# "offcore-flat" at DIR/offcore.sock and DIR/offcore-flat.sock. Sets CTR
# (a ctr command line) and CD_PID.
containerd_up() {
  local dir=$1
  mkdir -p "$dir/root" "$dir/state"
  cat > "$dir/config.toml" <<TOML
version = 2
root = "$dir/root"
state = "$dir/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$dir/containerd.sock"
[ttrpc]
  address = "$dir/containerd.sock.ttrpc"
[proxy_plugins.offcore]
  type = "snapshot"
  address = "$dir/offcore.sock"
[proxy_plugins.offcore-flat]
  type = "snapshot"
  address = "$dir/offcore-flat.sock"
TOML
  containerd --config "$dir/config.toml" >>"$dir/containerd.log" 2>&1 &
  CD_PID=$!
  cleanup "containerd_down $dir"
  CTR="ctr --address $dir/containerd.sock"
  for _ in $(seq 100); do
    $CTR version >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "containerd did not start: $(tail -3 "$dir/containerd.log")"
}

containerd_down() {
  local dir=$1
  # Containers first (their shims), then the daemon, then every mount under dir.
  for c in $($CTR task ls -q 2>/dev/null); do $CTR task kill -s KILL "$c" 2>/dev/null || true; done
  sleep 0.3
  for c in $($CTR task ls -q 2>/dev/null); do $CTR task delete -f "$c" 2>/dev/null || true; done
  for c in $($CTR containers ls -q 2>/dev/null); do $CTR containers delete "$c" 2>/dev/null || true; done
  kill "$CD_PID" 2>/dev/null || true
  wait "$CD_PID" 2>/dev/null || true
  { grep " $dir" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# snapshotter_start NAME ARGS...: `offcore snapshotter` for proxy plugin NAME
# with its root under $SN_DIR/NAME. Sets SN_PID_<NAME with - as _>.
snapshotter_start() {
  local name=$1; shift
  setsid "$OFFCORE" snapshotter --socket "$CD_DIR/$name.sock" --root "$SN_DIR/$name" "$@" \
    >>"$SN_DIR/$name.log" 2>&1 &
  local pid=$!
  eval "SN_PID_${name//-/_}=$pid"
  local up=""
  for _ in $(seq 100); do
    if [ -S "$CD_DIR/$name.sock" ]; then up=1; break; fi
    sleep 0.05
  done
  [ -n "$up" ] || fail "snapshotter $name did not start: $(tail -3 "$SN_DIR/$name.log")"
  # containerd redials a proxy plugin with backoff: wait until it answers
  # through containerd, so the next ctr call does not time out.
  [ -n "${CTR:-}" ] || return 0
  # (`ctr snapshots ls` is answered from containerd's own metadata; a
  # Prepare reaches the snapshotter.)
  local probe="probe-$ID-$RANDOM"
  for _ in $(seq 100); do
    if $CTR snapshots --snapshotter "$name" prepare "$probe" >/dev/null 2>&1; then
      $CTR snapshots --snapshotter "$name" rm "$probe" >/dev/null 2>&1 || true
      return 0
    fi
    sleep 0.2
  done
  fail "containerd cannot reach snapshotter $name"
}

snapshotter_stop() {
  local var="SN_PID_${1//-/_}"
  local pid=${!var:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  eval "$var="
}

# Unmounts everything below a directory (deepest first).
umount_below() {
  { grep " $1" /proc/self/mountinfo || true; } | awk '{print $5}' | sort -r | while read -r m; do umount -l "$m" 2>/dev/null || true; done
}

# rootfs_listing SNAPSHOTTER PARENT_CHAIN OUT: prepares a snapshot on the
# chain, mounts it, writes tree_manifest.py's listing to OUT, cleans up.
rootfs_listing() {
  local sn=$1 parent=$2 out=$3 key="cmp-$ID-$RANDOM" mnt
  mnt=$(mktemp -d /tmp/oc-rootfs-XXXX)
  $CTR snapshots --snapshotter "$sn" prepare "$key" "$parent" >/dev/null
  eval "$($CTR snapshots --snapshotter "$sn" mounts "$mnt" "$key")"
  python3 "$IMG_DIR/tree_manifest.py" "$mnt" > "$out"
  umount "$mnt"
  rmdir "$mnt"
  $CTR snapshots --snapshotter "$sn" rm "$key"
}

# Copies the daemons' logs to /var/tmp/offcore-test-logs/<test>/ on exit, so
# a failure can be read after the work dir is gone.
keep_logs() {
  local dest=/var/tmp/offcore-test-logs/$(basename "$0" .sh)
  cleanup "rm -rf $dest; mkdir -p $dest; find $1 -name '*.log' -exec cp {} $dest/ \\; ; cp /run/offcore/$N/images.log $dest/ 2>/dev/null"
}

# lazy_stack_setup NAME: a node NAME$ID, a registry, the offcore snapshotter
# (layered, auto back end) and containerd. Sets N, work, CD_DIR, SN_DIR and
# CAT; every piece is undone on exit, mounts under $work/mnt included.
lazy_stack_setup() {
  N=$1$ID
  work=$(mktemp -d "/var/tmp/oc-$1-XXXX"); cleanup "rm -rf $work"
  CD_DIR=$work/cd SN_DIR=$work/sn CAT=$work/catalog
  mkdir -p "$SN_DIR" "$CD_DIR"
  keep_logs "$work"
  node_up "$N" >/dev/null
  registry_up "reg$ID" "$work/registry"
  snapshotter_start offcore --node "$N" --catalog "$CAT" --plain-http
  containerd_up "$CD_DIR"
  cleanup "rm -rf /var/cache/offcore/$N"
  cleanup "umount_below /run/offcore/$N/images"
  cleanup "\"$OFFCORE\" dpu service del --name $N --service images --force"
  cleanup "umount_below $work/mnt"
  cleanup "umount_below $SN_DIR"
  cleanup "snapshotter_stop offcore"
}

# lazy_fid_setup NAME: lazy_stack_setup, and the fidelity image converted to
# $REG/fid:lazy (layered, registry) and pulled.
lazy_fid_setup() {
  lazy_stack_setup "$1"
  python3 "$IMG_DIR/make_fidelity_image.py" "$work/layout" v1
  skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/fid:v1"
  oc image convert "$REG/fid:v1" --to registry --dest "$REG/fid:lazy" --plain-http --catalog "$CAT" >/dev/null
  $CTR image pull --plain-http --snapshotter offcore "$REG/fid:lazy" >/dev/null
}
