#!/usr/bin/env bash
# Installs every Debian package offcore builds or runs with. Idempotent: a
# second run only re-checks. Run as root (CI and the README do).
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake ninja-build ccache pkg-config clang libclang-rt-14-dev clang-format clang-tidy
  # libraries
  libcli11-dev libspdlog-dev libfmt-dev nlohmann-json3-dev libmicrohttpd-dev libre2-dev
  libcurl4-openssl-dev libisal-dev libgtest-dev libgmock-dev libbenchmark-dev
  # what the software DPU drives at run time
  iproute2 nftables iputils-ping procps util-linux ethtool
  # FUSE disks (src/disk)
  libfuse3-dev fuse3
  # lazy container images (src/image, src/snapshotter)
  libarchive-dev libzstd-dev liblz4-dev libssl-dev libsqlite3-dev
  libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc
  golang-github-containerd-containerd-dev erofs-utils
  # pod networking and Service load balancing (src/net, src/svc)
  libxxhash-dev libbpf-dev bpftool libyaml-cpp-dev linux-libc-dev
  containerd runc docker-registry skopeo umoci busybox-static debootstrap
  # the service mesh (src/mesh)
  libhttp-parser-dev libnghttp2-dev nghttp2-client haproxy openssl tcpdump python3-grpcio python3-grpc-tools
  # tests, benchmarks and the demo
  jq curl gnuplot-nox python3 fio e2fsprogs wrk nginx-light
  # registry authentication tests: htpasswd (bcrypt) and a token server (python3-cryptography)
  apache2-utils python3-cryptography
  # cluster state on etcd (src/kv, svc/etcd_cluster_store): tests and the bench start their own members
  etcd-server etcd-client
  # VM device offload (src/virt): TCG guests and the reference back end;
  # scripts/guest/kit.sh builds the guest from busybox-static, xz and apt
  qemu-system-x86 qemu-system-common qemu-utils xz-utils
  # libvirt/virsh driving a VM on offcore's vhost-user sockets (docs/VM.md);
  # tests start their own libvirtd, no systemd unit is needed
  libvirt-daemon-system libvirt-clients libvirt-daemon-driver-qemu
)

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: run as root (it installs packages with apt-get)" >&2
  exit 1
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup.sh: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
echo "setup.sh: all ${#packages[@]} packages present"
