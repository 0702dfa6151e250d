# shellcheck shell=bash
# Helpers for the VM tests: boot a small Linux guest under QEMU (TCG) with a
# vhost-user-blk disk or a plain file, run a script in it and read what it
# printed. Source after lib.sh (it uses ID, cleanup, fail, step).
#
#   guest_kit                         build the kit once (cached across runs)
#   guest_boot NAME [opts] <SCRIPT    start QEMU in the background, SCRIPT
#                                     (stdin) runs as the guest's /test.sh
#     --vhost-blk SOCK   vhost-user-blk disk (/dev/vda) on a back end's socket
#     --packed           the following --vhost-blk disks use a packed
#                        virtqueue (packed=on; give it before --vhost-blk)
#     --reconnect S      QEMU reconnects to the vhost-user sockets every S s
#                        when the back end goes away (give it before
#                        --vhost-blk)
#     --drive FILE       QEMU's own virtio-blk on a raw file (reference)
#     --vhost-net SOCK[,queues=N]  virtio-net NIC (eth0) on a vhost-user-net
#                        back end's socket, N queue pairs (mq=on when N > 1;
#                        the guest uses min(N, vCPUs) of them)
#     --smp N            vCPUs (1 by default)
#     --fio              add fio to the guest (and 512M of memory)
#     --mem SIZE         guest memory (256M by default)
#     --incoming PORT    wait for a migration on 127.0.0.1:PORT (same other
#                        options as the source guest; see guest_migrate)
#     --in-domain NODE DOMAIN  run QEMU in a software DPU's soc or host
#                        domain (`offcore dpu exec`, same PID)
#     --tap IFNAME MAC   QEMU's own virtio-net on an existing (persistent)
#                        tap in QEMU's network namespace, e.g. a VM NIC's
#                        tap in the SoC (with --in-domain NODE soc)
#     -- ARGS...         more QEMU arguments
#   guest_wait NAME [TIMEOUT_S]       wait for the script's end; returns its
#                                     exit status; fails on timeout
#   guest_run NAME [opts] <SCRIPT     guest_boot + guest_wait
#   guest_output NAME                 what the script printed
#   guest_value NAME KEY              the last "KEY=value" line it printed
#   guest_qmp NAME JSON               one QMP command, prints the reply
#   guest_migrate SRC PORT [TIMEOUT_S]  live-migrate SRC to the guest waiting
#                                     on PORT (guest_boot --incoming); prints
#                                     query-migrate's final reply, stops SRC
#   guest_free_port                   a free TCP port on 127.0.0.1
#   guest_kill NAME                   stop QEMU now
#   guest_pid NAME                    QEMU's PID (empty once it has ended)
#   qsd_start SOCK FILE               qemu-storage-daemon serving FILE as
#                                     vhost-user-blk on SOCK (the reference
#                                     back end; one QEMU per socket)
#   qsd_stop                          stop all of them
#
# Everything lives in $GUEST_DIR (one per test, removed on exit); QEMU and
# the daemons are stopped by PID on exit.

GUEST_KIT=${OFFCORE_GUEST_KIT:-/var/tmp/offcore-guest-kit}
GUEST_DIR=/tmp/oc-guest-$ID
GUEST_TIMEOUT=${GUEST_TIMEOUT:-120}
# Drop "quiet" to see the kernel's messages in the console log.
GUEST_CMDLINE=${GUEST_CMDLINE:-console=ttyS0 panic=-1 quiet}
mkdir -p "$GUEST_DIR"
cleanup "rm -rf $GUEST_DIR"
declare -A GUEST_PIDS=()
QSD_PIDS=()

guest_kit() {
  [ -n "${GUEST_KIT_READY:-}" ] && return 0
  local kit
  kit="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/scripts/guest/kit.sh"
  "$kit" "$GUEST_KIT" || fail "the guest kit did not build (scripts/guest/kit.sh $GUEST_KIT)"
  GUEST_KIT_READY=1
}

# Packs stdin as /test.sh into an initrd layer after the kit's layers.
_guest_initrd() {
  local name=$1 fio=$2 d="$GUEST_DIR/$1.layer"
  rm -rf "$d" && mkdir -p "$d"
  cat >"$d/test.sh"
  chmod 755 "$d/test.sh"
  (cd "$d" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$GUEST_DIR/$name.script.cpio.gz"
  if [ "$fio" = 1 ]; then
    cat "$GUEST_KIT/base.cpio.gz" "$GUEST_KIT/fio.cpio.gz" "$GUEST_DIR/$name.script.cpio.gz"
  else
    cat "$GUEST_KIT/base.cpio.gz" "$GUEST_DIR/$name.script.cpio.gz"
  fi >"$GUEST_DIR/$name.initrd"
}

guest_boot() {
  local name=$1; shift
  local mem=256M fio=0 disk=() extra=() wrap=() extra_in=() reconnect= smp=1 nq k mq packed=
  while [ $# -gt 0 ]; do
    case $1 in
      --reconnect) reconnect=",reconnect=$2"; shift 2 ;;
      --packed) packed=",packed=on"; shift ;;
      --vhost-blk) disk+=(-chardev "socket,id=vub${#disk[@]},path=$2$reconnect"
                          -device "vhost-user-blk-pci,chardev=vub${#disk[@]}$packed"); shift 2 ;;
      --drive) disk+=(-drive "file=$2,format=raw,if=virtio,cache=none,aio=threads"); shift 2 ;;
      --vhost-net)
        # vectors=0: QEMU 7.2's vhost-user-net crashes with MSI-X (PLATFORM.md).
        nq=1; [[ "$2" == *,queues=* ]] && nq=${2##*,queues=}
        k=${#disk[@]} mq=; [ "$nq" -gt 1 ] && mq=,mq=on
        disk+=(-chardev "socket,id=vun$k,path=${2%%,*}$reconnect"
               -netdev "vhost-user,id=net$k,chardev=vun$k,queues=$nq"
               -device "virtio-net-pci,netdev=net$k,mac=52:54:00:4f:43:$(printf %02x $(( k % 256 ))),vectors=0$mq")
        shift 2 ;;
      --smp) smp=$2; shift 2 ;;
      --fio) fio=1; mem=512M; shift ;;
      --mem) mem=$2; shift 2 ;;
      --incoming) extra_in=(-incoming "tcp:127.0.0.1:$2"); shift 2 ;;
      --in-domain) wrap=("$OFFCORE" dpu exec --name "$2" --domain "$3" --); shift 3 ;;
      --tap) disk+=(-netdev "tap,id=tn${#disk[@]},ifname=$2,script=no,downscript=no,vhost=off"
                    -device "virtio-net-pci,netdev=tn${#disk[@]},mac=$3"); shift 3 ;;
      --) shift; extra=("$@"); break ;;
      *) fail "guest_boot: unknown option $1" ;;
    esac
  done
  guest_kit
  [ -z "${GUEST_PIDS[$name]:-}" ] || fail "guest_boot: guest $name is already running"
  _guest_initrd "$name" "$fio"
  local log="$GUEST_DIR/$name.log"
  : >"$log"
  # Shared memfd guest memory: a vhost-user back end maps it from another
  # process. -no-reboot: the guest's poweroff (or a panic) ends QEMU.
  "${wrap[@]}" qemu-system-x86_64 -accel tcg -m "$mem" -smp "$smp" -nodefaults -display none -no-reboot \
    -object "memory-backend-memfd,id=mem,size=$mem,share=on" -numa node,memdev=mem \
    -kernel "$GUEST_KIT/kernel" -initrd "$GUEST_DIR/$name.initrd" \
    -append "$GUEST_CMDLINE" \
    -serial "file:$log" -qmp "unix:$GUEST_DIR/$name.qmp,server=on,wait=off" \
    "${disk[@]}" "${extra_in[@]}" "${extra[@]}" >"$GUEST_DIR/$name.qemu.err" 2>&1 &
  GUEST_PIDS[$name]=$!
  cleanup "guest_kill $name"
}

guest_pid() { echo "${GUEST_PIDS[$1]:-}"; }

guest_kill() {
  local pid=${GUEST_PIDS[$1]:-}
  [ -n "$pid" ] || return 0
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  GUEST_PIDS[$1]=
}

guest_wait() {
  local name=$1 timeout=${2:-$GUEST_TIMEOUT} pid=${GUEST_PIDS[$1]:-} log="$GUEST_DIR/$1.log" i
  [ -n "$pid" ] || fail "guest_wait: guest $name is not running"
  for (( i = 0; i < timeout * 10; i++ )); do
    grep -q '^KIT-RESULT rc=' "$log" 2>/dev/null && break
    alive "$pid" || break
    sleep 0.1
  done
  if ! grep -q '^KIT-RESULT rc=' "$log" 2>/dev/null; then
    local why="QEMU exited"
    alive "$pid" && why="no result after ${timeout}s"
    guest_kill "$name"
    echo "--- guest $name console (tail):" >&2; tail -30 "$log" >&2
    echo "--- QEMU stderr:" >&2; tail -10 "$GUEST_DIR/$name.qemu.err" >&2
    fail "guest $name: $why"
  fi
  # The guest powers off right after the marker; give QEMU a moment.
  for (( i = 0; i < 100; i++ )); do alive "$pid" || break; sleep 0.1; done
  guest_kill "$name"
  return "$(sed -n 's/^KIT-RESULT rc=\([0-9]*\).*/\1/p' "$log" | tail -1)"
}

guest_run() {
  local name=$1; shift
  guest_boot "$name" "$@"
  guest_wait "$name"
}

# A migrated guest's console continues in the destination's log, which has
# no KIT-BOOTED line: then everything up to KIT-RESULT is output.
guest_output() {
  local log="$GUEST_DIR/$1.log"
  if grep -q '^KIT-BOOTED' "$log"; then
    sed -n '/^KIT-BOOTED/,/^KIT-RESULT/p' "$log" | sed '1d'
  else
    sed -n '1,/^KIT-RESULT/p' "$log"
  fi | tr -d '\r' | grep -v '^KIT-RESULT'
}

guest_value() {
  guest_output "$1" | sed -n "s/^$2=//p" | tail -1
}

guest_qmp() {
  /usr/bin/python3 - "$GUEST_DIR/$1.qmp" "$2" <<'EOF'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
f = s.makefile("rw")
f.readline()  # greeting
def call(cmd):
    f.write(cmd + "\n"); f.flush()
    while True:
        r = json.loads(f.readline())
        if "return" in r or "error" in r:
            return r
call('{"execute":"qmp_capabilities"}')
print(json.dumps(call(sys.argv[2])))
EOF
}

guest_free_port() {
  /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

guest_migrate() {
  local src=$1 port=$2 timeout=${3:-60} r i
  r=$(guest_qmp "$src" "{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"tcp:127.0.0.1:$port\"}}")
  [[ "$r" == *'"return"'* ]] || fail "migrate $src to port $port refused: $r"
  for (( i = 0; i < timeout * 4; i++ )); do
    r=$(guest_qmp "$src" '{"execute":"query-migrate"}')
    case $r in
      *'"status": "completed"'*) guest_kill "$src"; echo "$r"; return 0 ;;
      *'"status": "failed"'* | *'"status": "cancelled"'*)
        fail "migration of $src failed: $r; QEMU: $(tail -3 "$GUEST_DIR/$src.qemu.err")" ;;
    esac
    sleep 0.25
  done
  fail "migration of $src not done after ${timeout}s: $r"
}

# locking=off: during a migration the source's and the destination's daemons
# open the same file (a vhost-user-blk export serves one QEMU at a time).
qsd_start() {
  local sock=$1 file=$2 i pid
  rm -f "$sock"
  qemu-storage-daemon --blockdev "driver=file,node-name=f0,filename=$file,locking=off" \
    --blockdev driver=raw,node-name=d0,file=f0 \
    --export "type=vhost-user-blk,id=e0,node-name=d0,addr.type=unix,addr.path=$sock,writable=on" \
    >>"$GUEST_DIR/qsd.log" 2>&1 &
  pid=$!
  QSD_PIDS+=("$pid")
  cleanup "kill $pid; wait $pid"
  for (( i = 0; i < 100; i++ )); do [ -S "$sock" ] && return 0; sleep 0.05; done
  fail "qemu-storage-daemon did not listen on $sock: $(tail -3 "$GUEST_DIR/qsd.log")"
}

# Stops every qemu-storage-daemon this test started.
qsd_stop() {
  local pid
  for pid in "${QSD_PIDS[@]}"; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  QSD_PIDS=()
}
