#!/usr/bin/env bash
# Builds the cold-start benchmark images locally from Debian packages (no
# public image registry is reachable) and caches them as OCI layouts under
# $OUT (default /var/cache/offcore/bench-images-v2). Each image's config runs
# its workload (Entrypoint/Cmd), as a real image's would: that is what
# `image convert` derives the default prefetch list from.
#   small   busybox, one layer (~1 MB)            /bin/echo hello
#   python  debootstrap minbase + python3          python3 -c 'print(42)'
#   numpy   python + python3-numpy                 python3 -c 'import numpy; print(numpy.__version__)'
#   gcc     python + gcc + libc6-dev               gcc --version
#   jvm     minbase + openjdk-17-jre-headless      java -version
#   node    minbase + nodejs                       node -e 'console.log(42)'
# The images share their base layers, as real images do. Idempotent: an
# image already in the cache is kept.
set -euo pipefail
OUT=${OUT:-/var/cache/offcore/bench-images-v2}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
mkdir -p "$OUT"
work=$(mktemp -d /var/tmp/oc-bench-img-XXXX)
trap 'umount -l "$work"/*/proc 2>/dev/null || true; rm -rf "$work"' EXIT
PATHS=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

have() { [ -f "$OUT/$1/index.json" ] && grep -q "\"$2\"" "$OUT/$1/index.json"; }

# config IMAGE:TAG ARGV...: the image runs ARGV.
config() {
  local ref=$1; shift
  local args=(--config.env "$PATHS")
  for a in "$@"; do args+=(--config.cmd "$a"); done
  umoci config --image "$ref" "${args[@]}"
}

# layer BASE_TAG TAG PACKAGES...: TAG = BASE_TAG + the packages, one layer.
layer() {
  local base=$1 tag=$2; shift 2
  echo "bench-images: $tag = $base + $*"
  umoci unpack --image "$OUT/debian:$base" "$work/$tag" >/dev/null
  # Some maintainer scripts need /proc (openjdk's runs java).
  mount -t proc proc "$work/$tag/rootfs/proc"
  chroot "$work/$tag/rootfs" sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    --no-install-recommends $* >/dev/null && apt-get clean && rm -rf /var/lib/apt/lists/*"
  umount "$work/$tag/rootfs/proc"
  umoci repack --image "$OUT/debian:$tag" "$work/$tag" >/dev/null
  rm -rf "$work/$tag"
}

if ! have small latest; then
  echo "bench-images: small (busybox)"
  [ -d "$OUT/small" ] || umoci init --layout "$OUT/small"
  umoci new --image "$OUT/small:latest"
  config "$OUT/small:latest" /bin/echo hello
  umoci unpack --image "$OUT/small:latest" "$work/small" >/dev/null
  mkdir -p "$work/small/rootfs/bin"
  cp /bin/busybox "$work/small/rootfs/bin/busybox"
  for t in sh echo cat ls; do ln -sf busybox "$work/small/rootfs/bin/$t"; done
  umoci repack --image "$OUT/small:latest" "$work/small" >/dev/null
fi

BIG=(python numpy gcc jvm node)
missing=0
for t in "${BIG[@]}"; do have "$t" latest || missing=1; done
if [ "${ONLY:-}" != small ] && [ "$missing" = 1 ]; then
  echo "bench-images: debootstrap bookworm minbase (takes a few minutes)"
  rm -rf "$OUT/debian"
  umoci init --layout "$OUT/debian"
  umoci new --image "$OUT/debian:base"
  umoci unpack --image "$OUT/debian:base" "$work/deb" >/dev/null
  rm -rf "$work/deb/rootfs"
  debootstrap --variant=minbase bookworm "$work/deb/rootfs" "$MIRROR" >"$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log"; exit 1; }
  rm -rf "$work/deb/rootfs/var/cache/apt/archives/"*.deb
  umoci repack --image "$OUT/debian:base" "$work/deb" >/dev/null
  rm -rf "$work/deb"
  layer base python python3
  layer python numpy python3-numpy
  layer python gcc gcc libc6-dev
  layer base jvm openjdk-17-jre-headless
  layer base node nodejs
  config "$OUT/debian:python" python3 -c 'print(42)'
  config "$OUT/debian:numpy" python3 -c 'import numpy; print(numpy.__version__)'
  config "$OUT/debian:gcc" gcc --version
  config "$OUT/debian:jvm" java -version
  config "$OUT/debian:node" node -e 'console.log(42)'
  umoci gc --layout "$OUT/debian"
  # One layout per benchmark image, named as the suite expects.
  for t in "${BIG[@]}"; do
    rm -rf "$OUT/$t"
    cp -a "$OUT/debian" "$OUT/$t"
    umoci tag --image "$OUT/$t:$t" latest
  done
fi
for t in small "${BIG[@]}"; do
  [ -d "$OUT/$t" ] || continue
  du -sh "$OUT/$t" | sed "s|$OUT/||"
done
