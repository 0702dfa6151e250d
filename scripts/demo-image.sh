#!/usr/bin/env bash
# Builds the image `offcore demo` runs, from Debian packages installed on
# this machine (no download: the files come from `dpkg -L`), as an OCI
# layout with umoci, the way scripts/bench-images.sh builds its images:
#   layer 1  busybox-static                                   (~2 MB)
#   layer 2  libc6 zlib1g libexpat1 python3.11-minimal
#            libpython3.11-minimal libpython3.11-stdlib       (~35 MB)
#   layer 3  gcc-12, cpp-12, binutils, libc6-dev and their
#            libraries: a toolchain the workload never opens (~145 MB)
# Tag `demo`; the workload is `python3.11 -c 'import json; print(42)'`, so
# a lazy pull reads a small part of the image, as real workloads do.
#
#   scripts/demo-image.sh LAYOUT_DIR
set -euo pipefail
OUT=${1:?usage: demo-image.sh LAYOUT_DIR}
[ ! -e "$OUT" ] || { echo "demo-image.sh: $OUT exists; pass a new directory" >&2; exit 1; }
work=$(mktemp -d /var/tmp/oc-demo-img-XXXX)
trap 'rm -rf "$work"' EXIT

# copy_packages ROOTFS PKG...: every file and symlink the packages installed.
copy_packages() {
  local root=$1; shift
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
      || { echo "demo-image.sh: package $p is not installed; run scripts/setup.sh" >&2; exit 1; }
  done
  # Files at their canonical paths (this machine is usrmerged: /lib is a
  # symlink to usr/lib), directories implied; lib and lib64 link to usr/.
  local f
  dpkg -L "$@" | while read -r f; do
    if [ -f "$f" ] || [ -L "$f" ]; then
      [ -d "$f" ] || printf '%s\n' "$(readlink -f "$(dirname "$f")")/$(basename "$f")"
    fi
  done | sed 's|^/||' | sort -u > "$work/files"
  tar -C / -cf - --no-recursion -T "$work/files" | tar -C "$root" -xf -
  [ -e "$root/lib" ] || ln -s usr/lib "$root/lib"
  [ -e "$root/lib64" ] || ln -s usr/lib64 "$root/lib64"
}

umoci init --layout "$OUT"
umoci new --image "$OUT:demo"
umoci config --image "$OUT:demo" --config.env PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin --config.cmd /bin/sh
umoci unpack --image "$OUT:demo" "$work/b" >/dev/null
r=$work/b/rootfs
mkdir -p "$r/bin" "$r/tmp" "$r/proc" "$r/dev" "$r/sys" "$r/etc"
chmod 1777 "$r/tmp"
cp /bin/busybox "$r/bin/busybox"
for t in sh echo cat ls sleep; do ln -sf busybox "$r/bin/$t"; done
umoci repack --refresh-bundle --image "$OUT:demo" "$work/b" >/dev/null
copy_packages "$r" libc6 zlib1g libexpat1 python3.11-minimal libpython3.11-minimal libpython3.11-stdlib
umoci repack --refresh-bundle --image "$OUT:demo" "$work/b" >/dev/null
copy_packages "$r" gcc-12 cpp-12 binutils-x86-64-linux-gnu libgcc-12-dev libisl23 libmpc3 libmpfr6 libgmp10 \
  libbinutils libctf0 libjansson4 libzstd1 libc6-dev
umoci repack --image "$OUT:demo" "$work/b" >/dev/null
umoci gc --layout "$OUT"
