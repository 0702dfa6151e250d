# Shared helpers for the integration tests. Each test sources this file,
# names everything it creates after its own PID, and registers cleanups that
# run on any exit (trap), so a failing test leaves nothing behind.
set -euo pipefail

OFFCORE=${OFFCORE:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/src/offcore}
export OFFCORE
ID=$(( $$ % 100000 ))
CLEANUPS=()

on_exit() {
  local rc=$?
  for (( i=${#CLEANUPS[@]}-1; i>=0; i-- )); do
    eval "${CLEANUPS[$i]}" >/dev/null 2>&1 || true
  done
  if [ "$rc" -eq 0 ]; then echo "PASS: $(basename "$0")"; else echo "FAIL: $(basename "$0") (exit $rc)"; fi
  exit "$rc"
}
trap on_exit EXIT

cleanup() { CLEANUPS+=("$*"); }
fail() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "--- $*"; }

oc() { "$OFFCORE" "$@"; }

# Runs a command that must fail; its stderr must contain the given text.
expect_fail() {
  local want=$1; shift
  local err rc=0
  err=$("$@" 2>&1 >/dev/null) || rc=$?
  [ "$rc" -ne 0 ] || fail "expected failure from: $*"
  [[ "$err" == *"$want"* ]] || fail "error from '$*' was '$err', expected it to mention '$want'"
  [ "$(printf '%s' "$err" | wc -l)" -le 1 ] || fail "error from '$*' is not one line: $err"
  echo "ok (refused): $err"
}

# Float comparison: assert_cmp A OP B, with OP one of < <= > >=.
assert_cmp() {
  awk -v a="$1" -v b="$3" -v op="$2" 'BEGIN {
    ok = (op == "<" && a < b) || (op == "<=" && a <= b) || (op == ">" && a > b) || (op == ">=" && a >= b);
    exit ok ? 0 : 1 }' || fail "expected $1 $2 $3${4:+ ($4)}"
}

# Brings up a node and registers its teardown.
node_up() {
  local name=$1; shift
  cleanup "\"$OFFCORE\" dpu down --name $name"
  oc dpu up --name "$name" "$@"
}

netns_add() {
  ip netns add "$1"
  cleanup "ip netns delete $1"
}

# Everything a node owns must be gone: namespace, cgroups in every
# hierarchy, run dir, fabric-side link.
assert_node_gone() {
  local name=$1
  ! ip netns list | grep -qw "oc-$name-soc" || fail "netns oc-$name-soc left behind"
  for h in /sys/fs/cgroup/*/offcore/$name /sys/fs/cgroup/offcore/$name; do
    [ ! -e "$h" ] || fail "cgroup $h left behind"
  done
  [ ! -e "/run/offcore/$name" ] || fail "/run/offcore/$name left behind"
  if ip netns list | grep -qw oc-fabric; then
    ! ip -n oc-fabric link show "ocu-$name" >/dev/null 2>&1 || fail "fabric link ocu-$name left behind"
  fi
  ! ip link show "och-$name" >/dev/null 2>&1 || fail "host link och-$name left behind"
  ! grep -q " /run/offcore/$name" /proc/self/mountinfo || fail "mount under /run/offcore/$name left behind"
}

status_field() { oc dpu status --name "$1" --json | jq -r "$2"; }

# True while pid is a live process; a zombie waiting for init to reap it is
# already dead for our purposes.
alive() { [ -e "/proc/$1/stat" ] && [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]; }

# Starts a storage gateway in fabric host $1 on its address, port 4420, with
# data under $2; registers its teardown. Sets GW_IP and GW_PID.
gateway_up() {
  local host=$1 data=$2 extra=${3:-}
  oc fabric host add "$host" >/dev/null
  cleanup "\"$OFFCORE\" fabric host del $host"
  GW_IP=$(oc fabric host list --json | jq -r --arg h "$host" '.[] | select(.name==$h) | .ip'); GW_IP=${GW_IP%/*}
  # A gateway killed with -9 (the crash tests) cannot remove its run dir.
  cleanup "rm -rf /run/offcore/targets/$host"
  gateway_start "$host" "$data" $extra
  cleanup "gateway_stop"
}

# Storage gateways A, B, C... on the fabric hosts named by the arguments
# after DIR, data under DIR/a, DIR/b, ...: sets A_IP, A_PID, B_IP, B_PID,
# ... and registers each one's kill (a test may restart one and update its
# *_PID).
gateways_up() {
  local dir=$1; shift
  local letters=(A B C D E) i=0 host L
  for host in "$@"; do
    L=${letters[$i]}
    gateway_up "$host" "$dir/${L,,}"
    printf -v "${L}_IP" '%s' "$GW_IP"
    printf -v "${L}_PID" '%s' "$GW_PID"
    cleanup "kill \$${L}_PID 2>/dev/null"
    i=$((i + 1))
  done
}

gateway_start() {
  local host=$1 data=$2; shift 2
  setsid "$OFFCORE" fabric exec "$host" -- "$OFFCORE" target serve --listen "$GW_IP:4420" --data "$data" \
    --name "$host" "$@" >>"$data.log" 2>&1 &
  GW_PID=$!
  for _ in $(seq 100); do
    [ -S "/run/offcore/targets/$host/api.sock" ] && \
      curl -sf --unix-socket "/run/offcore/targets/$host/api.sock" http://x/v1/target >/dev/null && return 0
    sleep 0.05
  done
  fail "gateway $host did not start: $(tail -3 "$data.log")"
}

gateway_stop() {
  [ -n "${GW_PID:-}" ] && kill "$GW_PID" 2>/dev/null && wait "$GW_PID" 2>/dev/null || true
  GW_PID=
}

# Loop device over a disk file; registers its detach.
loop_attach() {
  local l
  l=$(losetup --find --show "$1")
  cleanup "losetup -d $l"
  echo "$l"
}

# A 3-member etcd cluster (Debian's etcd-server) on the fabric hosts named
# after DIR, data under DIR/<host>: sets ETCD_URL (etcd://ip:2379,...),
# ETCD_HOSTS, and ETCD_PID_<host> for etcd_kill/etcd_start. Members talk
# to each other and to the nodes' SoCs over the fabric only.
etcd_cluster_up() {
  local dir=$1; shift
  local host ip initial="" urls=""
  ETCD_HOSTS=("$@")
  mkdir -p "$dir"
  for host in "$@"; do
    oc fabric host add "$host" >/dev/null
    cleanup "\"$OFFCORE\" fabric host del $host"
    ip=$(oc fabric host list --json | jq -r --arg h "$host" '.[] | select(.name==$h) | .ip | sub("/.*"; "")')
    printf -v "ETCD_IP_${host}" '%s' "$ip"
    initial+="${initial:+,}$host=http://$ip:2380"
    urls+="${urls:+,}$ip:2379"
  done
  ETCD_INITIAL=$initial
  ETCD_URL="etcd://$urls"
  for host in "$@"; do
    etcd_start "$dir" "$host" new
    cleanup "etcd_kill $host"
  done
  # Ready when a write commits (a quorum elected a leader).
  local first=$1 ip0
  ip0=$(etcd_ip "$first")
  for _ in $(seq 100); do
    oc fabric exec "$first" -- etcdctl --endpoints "http://$ip0:2379" --command-timeout=1s put /offcore-probe x \
      >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  fail "etcd did not elect a leader: $(tail -3 "$dir/$first.log")"
}

etcd_ip() { local v="ETCD_IP_$1"; echo "${!v}"; }

# etcd_start DIR HOST new|existing: one member, in its fabric host.
etcd_start() {
  local dir=$1 host=$2 state=$3 ip
  ip=$(etcd_ip "$host")
  setsid "$OFFCORE" fabric exec "$host" -- etcd --name "$host" --data-dir "$dir/$host" \
    --listen-client-urls "http://$ip:2379" --advertise-client-urls "http://$ip:2379" \
    --listen-peer-urls "http://$ip:2380" --initial-advertise-peer-urls "http://$ip:2380" \
    --initial-cluster "$ETCD_INITIAL" --initial-cluster-state "$state" --initial-cluster-token "t$ID" \
    --max-txn-ops 20000 --heartbeat-interval 50 --election-timeout 500 >>"$dir/$host.log" 2>&1 &
  printf -v "ETCD_PID_${host}" '%s' "$!"
}

# Kills a member (by the pid we started) and waits for it to be gone.
etcd_kill() {
  local v="ETCD_PID_$1" pid
  pid=${!v:-}
  [ -n "$pid" ] || return 0
  kill -9 -- "-$pid" 2>/dev/null || kill -9 "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  printf -v "ETCD_PID_$1" '%s' ""
}

# etcdctl against the cluster, from the first member's fabric host.
etcdctl_c() {
  local h=${ETCD_HOSTS[0]} eps
  eps=$(echo "${ETCD_URL#etcd://}" | sed 's/\([^,]*\)/http:\/\/\1/g')
  oc fabric exec "$h" -- etcdctl --endpoints "$eps" --command-timeout=3s "$@"
}
