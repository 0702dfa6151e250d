#!/usr/bin/env bash
# Builds the cold-start benchmark images locally (no internet registry is
# reachable) and caches them as OCI layouts under $OUT (default
# /var/cache/offcore/bench-images):
#   small   busybox (one layer, ~2 MB)
#   python  debootstrap minbase bookworm + python3          (~150 MB, 2 layers)
#   gcc     the python image + gcc                          (~370 MB, 3 layers)
# The python and gcc images share their base layers, as real images do.
# Idempotent: an image already in the cache is kept.
set -euo pipefail
OUT=${OUT:-/var/cache/offcore/bench-images}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT"
work=$(mktemp -d /var/tmp/oc-bench-img-XXXX)
trap 'umount -l "$work"/*/proc 2>/dev/null || true; rm -rf "$work"' EXIT

have() { [ -f "$OUT/$1/index.json" ] && grep -q "\"$2\"" "$OUT/$1/index.json"; }

# new_image LAYOUT TAG: an empty image to unpack and fill.
new_image() {
  [ -d "$1" ] || umoci init --layout "$1"
  umoci new --image "$1:$2"
  umoci config --image "$1:$2" --config.env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --config.cmd /bin/sh
}

if ! have small latest; then
  echo "bench-images: small (busybox)"
  new_image "$OUT/small" latest
  umoci unpack --image "$OUT/small:latest" "$work/small"
  mkdir -p "$work/small/rootfs/bin"
  cp /bin/busybox "$work/small/rootfs/bin/busybox"
  for t in sh echo cat ls; do ln -sf busybox "$work/small/rootfs/bin/$t"; done
  umoci repack --image "$OUT/small:latest" "$work/small"
fi

if [ "${ONLY:-}" != small ] && { ! have python latest || ! have gcc latest; }; then
  echo "bench-images: debootstrap bookworm minbase (takes a few minutes)"
  rm -rf "$OUT/debian"
  new_image "$OUT/debian" base
  umoci unpack --image "$OUT/debian:base" "$work/deb"
  rm -rf "$work/deb/rootfs"
  debootstrap --variant=minbase bookworm "$work/deb/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work/deb/rootfs/var/cache/apt/archives/"*.deb
  umoci repack --image "$OUT/debian:base" "$work/deb"
  echo "bench-images: + python3"
  umoci unpack --image "$OUT/debian:base" "$work/py"
  chroot "$work/py/rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3 >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
  umoci repack --image "$OUT/debian:python" "$work/py"
  echo "bench-images: + gcc"
  umoci unpack --image "$OUT/debian:python" "$work/gcc"
  chroot "$work/gcc/rootfs" sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends gcc libc6-dev >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*'
  umoci repack --image "$OUT/debian:gcc" "$work/gcc"
  umoci gc --layout "$OUT/debian"
  # One layout per benchmark image, named as the suite expects.
  for t in python gcc; do
    rm -rf "$OUT/$t"
    cp -a "$OUT/debian" "$OUT/$t"
    umoci tag --image "$OUT/$t:$t" latest
  done
fi
for t in small python gcc; do
  [ -d "$OUT/$t" ] || continue
  du -sh "$OUT/$t" | sed "s|$OUT/||"
done
