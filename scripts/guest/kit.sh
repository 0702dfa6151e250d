#!/usr/bin/env bash
# Builds the guest kit for the VM tests: a Debian kernel and busybox
# initramfs layers that QEMU boots under TCG in a few seconds.
#
#   scripts/guest/kit.sh OUTDIR
#
# OUTDIR gets:
#   kernel        the kernel to pass to -kernel: an uncompressed vmlinux
#                 (PVH entry, boots faster) or the bzImage if it can't be
#                 extracted
#   base.cpio.gz  busybox, the virtio and ext4 modules, mke2fs, /init
#   fio.cpio.gz   fio and its shared libraries (a large layer: append it to
#                 the initrd only when the guest runs fio, and give it memory)
#   kit.env       KIT_KERNEL_PKG, KIT_KERNEL_VERSION, KIT_KERNEL_RELEASE
#
# /init loads the modules, mounts proc/sys/dev, runs /test.sh if a layer
# provides one (layers are concatenated gzip cpio archives: QEMU takes one
# -initrd, the kernel unpacks them all in order), prints "KIT-RESULT rc=N" on
# the console (ttyS0) and powers off.
#
# Only Debian's apt is used: `apt-get download` of linux-image-6.1.0-*-amd64.
# The .deb is cached in $OFFCORE_GUEST_CACHE (default
# /var/cache/offcore/guest) under its package name and version, and checked
# with dpkg-deb before reuse. A second run with nothing changed is a no-op.
# Needs: busybox (static), xz, gzip, e2fsprogs, fio (see scripts/setup.sh).
set -euo pipefail

out=${1:?usage: kit.sh OUTDIR}
cache=${OFFCORE_GUEST_CACHE:-/var/cache/offcore/guest}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
mkdir -p "$out" "$cache"
out=$(cd "$out" && pwd)

say() { echo "kit: $*" >&2; }
die() { echo "kit: $*" >&2; exit 1; }

# One builder per OUTDIR at a time; others wait and then find it done.
exec 9>"$out/.lock"
flock 9

# The modules the guest loads (their dependencies are added from modinfo).
# crc32c_generic: ext4 and jbd2 ask the crypto API for crc32c, and the guest
# has no modprobe to load it on demand.
want_modules=(virtio virtio_ring virtio_pci virtio_pci_modern_dev virtio_pci_legacy_dev
  virtio_blk virtio_net net_failover failover ext4 jbd2 mbcache crc16 crc32c_generic libcrc32c)

# --- which kernel: the newest linux-image-6.1.0-N-amd64 apt offers, else the
# newest one already in the cache (offline).
pick_kernel() {
  local pkg ver
  pkg=${KIT_KERNEL_PKG:-$(apt-cache search --names-only '^linux-image-6\.1\.0-[0-9]+-amd64$' 2>/dev/null |
    awk '{print $1}' | sort -V | tail -1)}
  if [ -n "$pkg" ]; then
    ver=$(apt-cache show --no-all-versions "$pkg" 2>/dev/null | awk '/^Version:/{print $2; exit}')
    [ -n "$ver" ] && { echo "$pkg $ver"; return; }
  fi
  local deb
  deb=$(ls "$cache"/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
  [ -n "$deb" ] || die "no linux-image-6.1.0-*-amd64 in apt and none cached in $cache: run apt-get update, or set OFFCORE_GUEST_CACHE to a cache that has one"
  deb=$(basename "$deb" .deb)
  echo "${deb%%_*} $(echo "$deb" | cut -d_ -f2)"
}

picked=$(pick_kernel)
read -r kpkg kver <<<"$picked"
deb="$cache/${kpkg}_${kver}.deb"

# Everything the result depends on: rebuild when the kernel, this script or
# the host tools change.
kit_stamp() {
  { echo "$kpkg $kver"; sha256sum "$here/kit.sh" "$here/init.sh"
    ls -l "$(command -v busybox)" "$(command -v fio)" "$(command -v mke2fs)"; } | sha256sum | cut -c1-16
}
kit_current() {
  [ -f "$out/kit.stamp" ] && [ "$(cat "$out/kit.stamp")" = "$(kit_stamp)" ] &&
    [ -s "$out/kernel" ] && [ -s "$out/base.cpio.gz" ] && [ -s "$out/fio.cpio.gz" ]
}
kit_current && exit 0

if [ -f "$deb" ] && ! dpkg-deb --info "$deb" >/dev/null 2>&1; then
  say "cached $deb is damaged, downloading it again"
  rm -f "$deb"
fi
download() {
  local dl f
  dl=$(mktemp -d "$cache/dl.XXXXXX")
  if (cd "$dl" && apt-get download -q "$kpkg=$kver" >/dev/null 2>&1) && f=$(ls "$dl"/*.deb) &&
    dpkg-deb --info "$f" >/dev/null 2>&1; then
    mv "$f" "$deb"
  fi
  rm -rf "$dl"
  [ -f "$deb" ]
}
if [ ! -f "$deb" ]; then
  say "downloading $kpkg $kver"
  if ! download; then
    # Offline with an older kernel cached: use that one.
    old=$(ls "$cache"/linux-image-6.1.0-*-amd64_*.deb 2>/dev/null | sort -V | tail -1 || true)
    [ -n "$old" ] && dpkg-deb --info "$old" >/dev/null 2>&1 ||
      die "apt-get download $kpkg=$kver failed and nothing is cached in $cache: check the network and apt sources"
    deb=$old
    old=$(basename "$old" .deb)
    kpkg=${old%%_*} kver=${old#*_}
    say "apt-get download failed; using the cached $kpkg $kver"
    kit_current && exit 0
  fi
fi
stamp=$(kit_stamp)

work=$(mktemp -d "$out/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

say "unpacking $kpkg $kver"
# Only the module folders the wanted modules and their dependencies live in.
dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$work" --wildcards './boot/vmlinuz-*' \
  './lib/modules/*/kernel/drivers/virtio/*' './lib/modules/*/kernel/drivers/block/*' \
  './lib/modules/*/kernel/drivers/net/*' './lib/modules/*/kernel/net/core/*' \
  './lib/modules/*/kernel/fs/ext4/*' './lib/modules/*/kernel/fs/jbd2/*' './lib/modules/*/kernel/fs/mbcache.ko' \
  './lib/modules/*/kernel/lib/*' './lib/modules/*/kernel/crypto/*' ||
  { rm -f "$deb"; die "$deb did not unpack (truncated?): removed it, run kit.sh again to download it"; }
krel=$(ls "$work/lib/modules")
moddir="$work/lib/modules/$krel/kernel"
vmlinuz=$(ls "$work"/boot/vmlinuz-*)

# --- kernel: decompress the payload of the bzImage (xz in Debian's config)
# to get an ELF vmlinux with its PVH note; fall back to the bzImage.
extract_vmlinux() {
  local off
  for off in $(LC_ALL=C grep -obUaP '\xfd7zXZ\x00' "$vmlinuz" | cut -d: -f1); do
    tail -c +$((off + 1)) "$vmlinuz" | xz -dc >"$work/vmlinux" 2>/dev/null || true
    if [ "$(head -c 4 "$work/vmlinux" | od -An -c | tr -d ' ')" = '177ELF' ]; then
      return 0
    fi
  done
  return 1
}
if extract_vmlinux; then
  mv "$work/vmlinux" "$out/kernel.new"
  kind=vmlinux
else
  say "could not extract vmlinux from $vmlinuz, using the bzImage (slower boot)"
  cp "$vmlinuz" "$out/kernel.new"
  kind=bzImage
fi

# --- modules: close over depends= of each module's modinfo, emit in
# dependency order (a module after everything it depends on).
declare -A modpath=() seen=()
while IFS= read -r f; do
  n=$(basename "$f" .ko)
  modpath[${n//-/_}]=$f
done < <(find "$moddir" -name '*.ko')
order=()
visit() {
  local m=${1//-/_} d deps
  [ -n "${seen[$m]:-}" ] && return 0
  seen[$m]=1
  [ -n "${modpath[$m]:-}" ] || die "module $m is not in $kpkg (built in? check modules.builtin)"
  deps=$(tr '\0' '\n' <"${modpath[$m]}" | sed -n 's/^depends=//p' | head -1)
  for d in ${deps//,/ }; do visit "$d"; done
  order+=("$m")
}
for m in "${want_modules[@]}"; do visit "$m"; done

# --- base layer
root="$work/base"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,proc,sys,dev,tmp,mnt,run,lib/modules,lib64,root}
cp "$(command -v busybox)" "$root/bin/busybox"
for a in $("$root/bin/busybox" --list); do
  [ -e "$root/bin/$a" ] || ln -s busybox "$root/bin/$a"
done
for m in "${order[@]}"; do cp "${modpath[$m]}" "$root/lib/modules/$m.ko"; done
printf '%s\n' "${order[@]}" >"$root/lib/modules/load.order"
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
echo "$krel" >"$root/etc/kit-release"

# Copies a dynamically linked program and the libraries ldd resolves for it
# into a layer, at the same paths as on the host.
copy_prog() {
  local layer=$1 prog=$2 dest=$3 lib
  mkdir -p "$layer$(dirname "$dest")"
  cp -L "$prog" "$layer$dest"
  for lib in $(ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\/.*ld-linux/ {print $1}'); do
    mkdir -p "$layer$(dirname "$lib")"
    [ -e "$layer$lib" ] || cp -L "$lib" "$layer$lib"
  done
}
# mke2fs from e2fsprogs: busybox's applet only makes ext2.
copy_prog "$root" "$(command -v mke2fs)" /usr/sbin/mke2fs
ln -s mke2fs "$root/usr/sbin/mkfs.ext4"
ln -s mke2fs "$root/usr/sbin/mkfs.ext2"
[ -f /etc/mke2fs.conf ] && cp /etc/mke2fs.conf "$root/etc/"

# --- fio layer
fioroot="$work/fio"
copy_prog "$fioroot" "$(command -v fio)" /usr/bin/fio

pack() { (cd "$1" && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) >"$2"; }
pack "$root" "$out/base.cpio.gz.new"
pack "$fioroot" "$out/fio.cpio.gz.new"

mv "$out/kernel.new" "$out/kernel"
mv "$out/base.cpio.gz.new" "$out/base.cpio.gz"
mv "$out/fio.cpio.gz.new" "$out/fio.cpio.gz"
cat >"$out/kit.env" <<EOF
KIT_KERNEL_PKG=$kpkg
KIT_KERNEL_VERSION=$kver
KIT_KERNEL_RELEASE=$krel
KIT_KERNEL_KIND=$kind
EOF
echo "$stamp" >"$out/kit.stamp"
say "ready in $out: $kpkg $kver ($kind), modules: ${order[*]}"
