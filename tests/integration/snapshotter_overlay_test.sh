#!/usr/bin/env bash
# The proxy snapshotter under a real containerd: a private containerd uses
# `offcore snapshotter` as [proxy_plugins.offcore]; a four-layer busybox
# image (whiteouts, an opaque dir, hard links, symlinks, xattrs, owners) is
# pushed to a local registry, pulled and run with --snapshotter offcore, and
# its root filesystem must equal the one containerd's own overlayfs
# snapshotter builds. Then the snapshotter is SIGKILLed and restarted: a
# running container is unaffected and new containers start.
source "$(dirname "$0")/lib.sh"
for t in containerd ctr runc containerd-shim-runc-v2 docker-registry skopeo umoci busybox curl; do
  command -v "$t" >/dev/null || fail "$t missing: apt-get install containerd runc docker-registry skopeo umoci busybox-static curl"
done
PY=/usr/bin/python3
work=$(mktemp -d /tmp/oc-sn-XXXX)
cleanup "rm -rf $work"
CSOCK=$work/containerd.sock
SSOCK=$work/sn.sock
ctr_() { ctr --address "$CSOCK" "$@"; }

# Processes and mounts this test made; run at exit in reverse order.
kill_wait() { [ -n "${1:-}" ] && kill -9 "$1" 2>/dev/null && wait "$1" 2>/dev/null; return 0; }
# containerd's shims outlive it; ours carry our unique address in argv.
kill_our_shims() {
  local p
  for p in /proc/[0-9]*; do
    tr '\0' ' ' <"$p/cmdline" 2>/dev/null | grep -qF -- "-address $CSOCK " && kill -9 "${p#/proc/}" 2>/dev/null
  done
  return 0
}
umount_below() {
  awk -v d="$1/" 'index($5, d) == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
}
remove_containers() {
  local c
  for c in $(ctr_ containers ls -q 2>/dev/null); do
    ctr_ task kill -s KILL "$c" 2>/dev/null; sleep 0.2; ctr_ task rm -f "$c" 2>/dev/null; ctr_ containers rm "$c" 2>/dev/null
  done
  return 0
}
cleanup 'kill_wait $REG_PID'
cleanup 'kill_wait $SN_PID'
cleanup "umount_below $work"
cleanup kill_our_shims
cleanup 'kill_wait $CD_PID'
cleanup remove_containers

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_for() {  # wait_for SECONDS WHAT CMD...
  local n=$(( $1 * 20 )) what=$2; shift 2
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.05; done
  fail "$what did not come up"
}

start_snapshotter() {
  "$OFFCORE" snapshotter --node "x$ID" --socket "$SSOCK" --root "$work/sn" --log-level debug >>"$work/sn.log" 2>&1 &
  SN_PID=$!
  wait_for 10 "the snapshotter (log: $(tail -2 "$work/sn.log" 2>/dev/null))" test -S "$SSOCK"
}

step "registry, snapshotter, containerd"
PORT=$(free_port)
mkdir -p "$work/registry"
cat >"$work/registry.yml" <<YML
version: 0.1
log: {level: warn}
storage: {filesystem: {rootdirectory: $work/registry}}
http: {addr: 127.0.0.1:$PORT}
YML
docker-registry serve "$work/registry.yml" >"$work/registry.log" 2>&1 &
REG_PID=$!
wait_for 10 "docker-registry" curl -sf "http://127.0.0.1:$PORT/v2/"
start_snapshotter
cat >"$work/containerd.toml" <<TOML
version = 2
root = "$work/cd-root"
state = "$work/cd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$CSOCK"
[ttrpc]
  address = "$CSOCK.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$work/cd-opt"
[proxy_plugins.offcore]
  type = "snapshot"
  address = "$SSOCK"
TOML
containerd --config "$work/containerd.toml" --log-level debug >"$work/containerd.log" 2>&1 &
CD_PID=$!
wait_for 15 "containerd (log: $work/containerd.log)" ctr_ version
ctr_ plugins ls | grep -E "snapshotter.v1 +offcore +- +ok" >/dev/null || fail "containerd did not load the offcore proxy plugin"

step "a four-layer busybox image"
oci=$work/oci
bundle=$work/bundle
umoci init --layout "$oci"
umoci new --image "$oci:v1"
umoci unpack --image "$oci:v1" "$bundle" >/dev/null
r=$bundle/rootfs
mkdir -p "$r/bin" "$r/etc" "$r/data/dir1" "$r/opaque/sub" "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for a in sh cat ls find stat sha256sum echo test readlink sort xargs sleep; do ln -s busybox "$r/bin/$a"; done
echo "hello from layer 1" >"$r/etc/hello.txt"
echo keep >"$r/data/keep.txt"
echo gone >"$r/data/gone.txt"
echo a >"$r/data/dir1/a"
echo old1 >"$r/opaque/old1"
echo old2 >"$r/opaque/sub/old2"
chmod 1777 "$r/tmp"
umoci repack --refresh-bundle --image "$oci:v1" "$bundle" >/dev/null
# Layer 2: a deletion, an opaque directory, links, an xattr, owners, modes.
rm "$r/data/gone.txt"
rm -rf "$r/opaque"
mkdir "$r/opaque"
echo fresh >"$r/opaque/new1"
echo shared >"$r/data/new.txt"
ln "$r/data/new.txt" "$r/data/new-hard"
ln -s keep.txt "$r/data/link"
ln -s /etc/hello.txt "$r/data/abs-link"
echo attr >"$r/data/xattr.txt"
"$PY" -c 'import os,sys; os.setxattr(sys.argv[1], "user.offcore", b"layer2")' "$r/data/xattr.txt"
echo owned >"$r/data/owned"
chown 123:456 "$r/data/owned"
chmod 0640 "$r/data/owned"
chmod 0700 "$r/data/dir1"
umoci repack --refresh-bundle --image "$oci:v1" "$bundle" >/dev/null
# Layer 3: a change to a layer-1 file, a file in a layer-1 dir.
echo "hello from layer 3" >"$r/etc/hello.txt"
echo b >"$r/data/dir1/b"
umoci repack --refresh-bundle --image "$oci:v1" "$bundle" >/dev/null
umoci config --image "$oci:v1" --config.env PATH=/bin --config.cmd /bin/sh
# Layer 4 by hand: umoci writes one whiteout per entry, never the opaque
# marker, so append a layer whose /opaque carries .wh..wh..opq.
"$PY" - "$oci" <<'PYEOF'
import gzip, hashlib, io, json, os, sys, tarfile, time
oci = sys.argv[1]
def blob(d): return os.path.join(oci, "blobs", "sha256", d.split(":")[1])
def put(data):
    d = "sha256:" + hashlib.sha256(data).hexdigest()
    open(blob(d), "wb").write(data)
    return d
raw = io.BytesIO()
with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as t:
    def add(name, kind, data=b"", mode=0o644):
        i = tarfile.TarInfo(name); i.type = kind; i.mode = mode; i.mtime = int(time.time()); i.size = len(data)
        t.addfile(i, io.BytesIO(data) if data else None)
    add("opaque", tarfile.DIRTYPE, mode=0o755)
    add("opaque/.wh..wh..opq", tarfile.REGTYPE, mode=0)
    add("opaque/only", tarfile.REGTYPE, b"opaque layer\n")
diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
gz = gzip.compress(raw.getvalue())
index = json.load(open(os.path.join(oci, "index.json")))
man = json.load(open(blob(index["manifests"][0]["digest"])))
cfg = json.load(open(blob(man["config"]["digest"])))
cfg["rootfs"]["diff_ids"].append(diff_id)
cfg.setdefault("history", []).append({"created_by": "opaque layer", "created": "2026-01-01T00:00:00Z"})
cbytes = json.dumps(cfg).encode()
man["config"] = dict(man["config"], digest=put(cbytes), size=len(cbytes))
man["layers"].append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": put(gz), "size": len(gz)})
mbytes = json.dumps(man).encode()
index["manifests"][0] = dict(index["manifests"][0], digest=put(mbytes), size=len(mbytes))
json.dump(index, open(os.path.join(oci, "index.json"), "w"))
PYEOF
layers=$(jq '.layers | length' "$oci/blobs/sha256/$(jq -r '.manifests[0].digest' "$oci/index.json" | cut -d: -f2)")
[ "$layers" = 4 ] || fail "expected 4 layers, the image has $layers"
IMG=127.0.0.1:$PORT/oc-sn-$ID:v1
skopeo copy -q --dest-tls-verify=false "oci:$oci:v1" "docker://$IMG"

step "pull with --snapshotter offcore"
out=$(ctr_ image pull --plain-http --print-chainid --snapshotter offcore "$IMG")
CHAIN=$(sed -n 's/.*image chain ID: //p' <<<"$out")
[ -n "$CHAIN" ] || fail "no chain ID in: $out"
grep -q "Commit name=" "$work/sn.log" || fail "containerd did not commit layers through the snapshotter"
ctr_ snapshots --snapshotter offcore info "$CHAIN" | jq -e '.Kind == "Committed"' >/dev/null || fail "chain $CHAIN not committed"

step "run with --snapshotter offcore"
script='cat /etc/hello.txt /data/new-hard; readlink /data/link; ls /opaque; test ! -e /data/gone.txt && echo gone-ok; echo w >/tmp/w && cat /tmp/w'
want=$'hello from layer 3\nshared\nkeep.txt\nonly\ngone-ok\nw'
got=$(ctr_ run --snapshotter offcore --rm "$IMG" "oc1-$ID" /bin/sh -c "$script")
[ "$got" = "$want" ] || fail "container printed '$got', expected '$want'"
echo "ok: container output"

step "same rootfs as containerd's overlayfs snapshotter"
ctr_ image pull --plain-http --snapshotter overlayfs "$IMG" >/dev/null
# Mount points (/proc, /dev, /sys) show the mounted filesystems: skip them.
listing='find / -xdev | grep -vxE "/(proc|dev|sys)" | sort | while read -r f; do stat -c "%n %f %u %g %h" "$f"; done
find / -xdev -type f | sort | xargs sha256sum'
a=$(ctr_ run --snapshotter offcore --rm "$IMG" "oc2-$ID" /bin/sh -c "$listing")
b=$(ctr_ run --snapshotter overlayfs --rm "$IMG" "oc3-$ID" /bin/sh -c "$listing")
[ "$(wc -l <<<"$a")" -gt 30 ] || fail "listing too short: $a"
diff <(echo "$a") <(echo "$b") || fail "rootfs differs between offcore and overlayfs (in-container listing)"
# From the host too, with link targets and xattrs: mount an active snapshot of each.
manifest() {
  "$PY" - "$1" <<'PYEOF'
import hashlib, os, stat, sys
root = sys.argv[1]
def entries():
    yield root
    for d, dirs, files in os.walk(root):
        dirs.sort()
        for n in sorted(dirs + files):
            yield os.path.join(d, n)
for p in entries():
        st = os.lstat(p); rel = os.path.relpath(p, root)
        extra = ""
        if stat.S_ISLNK(st.st_mode): extra = "-> " + os.readlink(p)
        elif stat.S_ISREG(st.st_mode): extra = hashlib.sha256(open(p, "rb").read()).hexdigest()
        xs = sorted((x, os.getxattr(p, x, follow_symlinks=False)) for x in os.listxattr(p, follow_symlinks=False))
        print(rel, oct(st.st_mode), st.st_uid, st.st_gid, st.st_nlink if not stat.S_ISDIR(st.st_mode) else "-", extra, xs)
PYEOF
}
for s in offcore overlayfs; do
  mkdir -p "$work/cmp-$s"
  ctr_ snapshots --snapshotter "$s" prepare "cmp-$s-$ID" "$CHAIN"
  m=$(ctr_ snapshots --snapshotter "$s" mounts "$work/cmp-$s" "cmp-$s-$ID")
  [[ "$m" == "mount -t overlay overlay $work/cmp-$s -o "* ]] || fail "unexpected mount command from $s: $m"
  eval "$m"
  manifest "$work/cmp-$s" >"$work/manifest-$s"
done
grep -q "data/xattr.txt .*user.offcore.*layer2" "$work/manifest-offcore" || fail "xattr missing: $(grep xattr "$work/manifest-offcore")"
grep -q "^data/owned 0o100640 123 456" "$work/manifest-offcore" || fail "owner/mode lost"
grep -q "^data/new-hard .* 2 " "$work/manifest-offcore" || fail "hard link lost"
! grep -q "opaque/sub\|opaque/new1\|gone.txt" "$work/manifest-offcore" || fail "whiteouts not honoured"
diff "$work/manifest-offcore" "$work/manifest-overlayfs" || fail "rootfs differs between offcore and overlayfs (host manifest)"
echo "ok: $(wc -l <"$work/manifest-offcore") entries equal"
# A view of the whole chain: an overlay with only lowerdirs, read-only.
mkdir -p "$work/view"
m=$(ctr_ snapshots --snapshotter offcore view --target "$work/view" "view-$ID" "$CHAIN")
[[ "$m" == "mount -t overlay overlay $work/view -o "*lowerdir=* && "$m" != *upperdir=* ]] || fail "view mounts: $m"
eval "$m"
manifest "$work/view" | diff - "$work/manifest-offcore" || fail "the view differs from the active snapshot"
! touch "$work/view/x" 2>/dev/null || fail "the view is writable"
umount "$work/view"
ctr_ snapshots --snapshotter offcore rm "view-$ID"
for s in offcore overlayfs; do umount "$work/cmp-$s"; ctr_ snapshots --snapshotter "$s" rm "cmp-$s-$ID"; done
ctr_ snapshots --snapshotter offcore usage | grep -q "$CHAIN" || fail "usage"
# Labels under containerd.io/snapshot/ reach the backend through Update.
ctr_ snapshots --snapshotter offcore label "$CHAIN" containerd.io/snapshot/oc-test=yes >/dev/null
grep -q "Update name=.*${CHAIN#sha256:}.*oc-test=yes.*paths=\[labels.containerd.io/snapshot/oc-test\]" "$work/sn.log" \
  || fail "Update did not reach the snapshotter"

step "SIGKILL the snapshotter while a container runs, restart it"
ctr_ run -d --snapshotter offcore "$IMG" "oc4-$ID" /bin/sleep 600 >/dev/null
kill -9 "$SN_PID"; wait "$SN_PID" 2>/dev/null || true; SN_PID=
[ -S "$SSOCK" ] || fail "expected the killed snapshotter's stale socket"
ctr_ task ls | grep -q "oc4-$ID .*RUNNING" || fail "container died with the snapshotter"
start_snapshotter
# containerd redials a proxy plugin with backoff (at most 3 s apart).
t0=$(date +%s.%N)
wait_for 10 "containerd's connection to the restarted snapshotter" ctr_ snapshots --snapshotter offcore info "$CHAIN"
echo "containerd reached the restarted snapshotter after $(echo "$(date +%s.%N) - $t0" | bc) s"
[ "$(ctr_ task exec --exec-id e1 "oc4-$ID" cat /etc/hello.txt)" = "hello from layer 3" ] || fail "exec after restart"
got=$(ctr_ run --snapshotter offcore --rm "$IMG" "oc5-$ID" /bin/sh -c "$script")
[ "$got" = "$want" ] || fail "after restart the container printed '$got'"
ctr_ task kill -s KILL "oc4-$ID"
for _ in $(seq 50); do ctr_ task ls | grep -q "oc4-$ID .*RUNNING" || break; sleep 0.1; done
ctr_ task rm "oc4-$ID" >/dev/null 2>&1
ctr_ containers rm "oc4-$ID"

step "image removal reaches the snapshotter"
ctr_ image rm --sync "$IMG" >/dev/null
snaps() { ctr_ snapshots --snapshotter offcore ls | tail -n +2; }
for _ in $(seq 50); do [ -z "$(snaps)" ] && break; sleep 0.1; done
[ -z "$(snaps)" ] || fail "snapshots left after image rm: $(snaps)"
left=$(find "$work/sn/snapshots" -mindepth 1 -maxdepth 1 | wc -l)
[ "$left" = 0 ] || fail "$left snapshot directories left in $work/sn/snapshots"

step "the calls containerd made (snapshotter log, debug level)"
calls='\[offcore\] (Prepare key|View key|Mounts key|Commit name|Remove key|Update name|Cleanup$|Stat key|List filters|Usage key)'
grep -E "$calls" "$work/sn.log" | sed -E 's/.*\[offcore\] //' | awk '{print $1}' | sort | uniq -c
grep -E "$calls" "$work/sn.log" | sed -E 's/.*\[offcore\] //' | cut -c1-200 | sed 's/^/  /'
