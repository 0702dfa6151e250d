#!/usr/bin/env bash
# etcd users and roles for offcore's key layout (docs/ETCD.md, Security),
# then etcd authentication on. Each node's agent may write only its own keys;
# the CLI's admin user writes the resources.
#
#   scripts/etcd-roles.sh --endpoints http://10.77.1.5:2379,... --dir /etc/offcore/etcd-users a b c
#
# Writes <dir>/<user>.password (0600) for root, offcore-admin,
# offcore-mesh-ca and node-<name> (an existing file is kept: run it again to
# add nodes). Point each node's config at its own user: "etcd_user":
# "node-a", "etcd_password_file": "<dir>/node-a.password", and at the mesh
# CA's: "mesh_ca_etcd_user": "offcore-mesh-ca", "mesh_ca_etcd_password_file":
# "<cluster_dir>/mesh/ca/etcd.password" (a copy of <dir>/offcore-mesh-ca.password
# where the proxy worker's sandbox hides it); the CLI's at offcore-admin.
# A node gets only its own password and the mesh CA's, never root's or the admin's. For TLS members, set
# ETCDCTL_CACERT / ETCDCTL_CERT / ETCDCTL_KEY as etcdctl reads them.
set -euo pipefail

usage() {
  echo "usage: $0 --endpoints URL[,URL...] --dir DIR NODE..." >&2
  exit 2
}
endpoints="" dir=""
while [[ $# -gt 0 ]]; do
  case $1 in
    --endpoints) endpoints=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    -h|--help) usage ;;
    --*) echo "$0: unknown option $1" >&2; usage ;;
    *) break ;;
  esac
done
[[ -n $endpoints && -n $dir ]] || usage
command -v etcdctl >/dev/null || { echo "$0: etcdctl not found; apt-get install etcd-client" >&2; exit 1; }
for n in "$@"; do
  [[ $n =~ ^[a-z0-9]([a-z0-9-]*[a-z0-9])?$ ]] || { echo "$0: node name '$n' is not a DNS label" >&2; exit 2; }
done
umask 077
mkdir -p "$dir"
export ETCDCTL_API=3 ETCDCTL_ENDPOINTS=$endpoints

# A user's password: kept if its file exists, else made. Never on a command line.
password() {
  local f=$dir/$1.password
  [[ -s $f ]] || openssl rand -hex 24 >"$f"
  chmod 600 "$f"
  cat "$f"
}
ctl() { etcdctl "$@" >/dev/null; }
# Creates the user (with its password from stdin) unless it exists, and gives it the role.
user() {
  local name=$1 role=$2
  if ! etcdctl user get "$name" >/dev/null 2>&1; then
    password "$name" | ctl user add "$name" --interactive=false
  fi
  [[ -z $role ]] || ctl user grant-role "$name" "$role"
}
role() { etcdctl role get "$1" >/dev/null 2>&1 || ctl role add "$1"; }

# endpoint status, not health: health reads a key, which needs a user once auth is on (a re-run).
etcdctl endpoint status >/dev/null 2>&1 || { echo "$0: etcd at $endpoints does not answer (etcdctl endpoint status)" >&2; exit 1; }
root_pw=$(password root)
enabled=false
if ! etcdctl user list >/dev/null 2>&1; then  # authentication is on already: as root
  enabled=true
  export ETCDCTL_USER="root:$root_pw"
  etcdctl user list >/dev/null || { echo "$0: cannot act as root with $dir/root.password" >&2; exit 1; }
fi
role root
user root root

# The CLI (svc apply/delete, dpu down): everything offcore keeps.
role offcore-admin
ctl role grant-permission offcore-admin readwrite /offcore/ --prefix
user offcore-admin offcore-admin
# The mesh keepers: the cluster's mesh CA, key included. No node role
# reaches it (nodes read /offcore/mesh/, which does not cover /offcore/mesh-ca/).
role offcore-mesh-ca
ctl role grant-permission offcore-mesh-ca readwrite /offcore/mesh-ca/ --prefix
user offcore-mesh-ca offcore-mesh-ca

# A node's agent: reads the cluster; writes its endpoints, its node record,
# its health, liveness and status, the generation every change bumps, and
# EIP claims (any EIP: the claim is a create-if-absent under its lease).
for n in "$@"; do
  r=offcore-node-$n
  role "$r"
  ctl role grant-permission "$r" read /offcore/v1/ --prefix
  ctl role grant-permission "$r" read /offcore/mesh/ --prefix
  ctl role grant-permission "$r" read /offcore/images/ --prefix
  ctl role grant-permission "$r" read /offcore/volumes/ --prefix
  ctl role grant-permission "$r" read /offcore/vms/ --prefix
  ctl role grant-permission "$r" readwrite /offcore/nexus/ --prefix
  ctl role grant-permission "$r" readwrite /offcore/v1/meta/generation
  ctl role grant-permission "$r" readwrite "/offcore/v1/endpoints/$n/" --prefix
  ctl role grant-permission "$r" readwrite "/offcore/v1/nodes/$n"
  ctl role grant-permission "$r" readwrite "/offcore/v1/health/$n"
  ctl role grant-permission "$r" readwrite "/offcore/v1/live/$n"
  ctl role grant-permission "$r" readwrite "/offcore/status/v1/$n"
  ctl role grant-permission "$r" readwrite /offcore/v1/owners/ --prefix
  user "node-$n" "$r"
done

$enabled || ctl auth enable
users="root, offcore-admin, offcore-mesh-ca"
for n in "$@"; do users+=", node-$n"; done
echo "etcd authentication is on; passwords in $dir (0600): $users"
