#!/usr/bin/env python3
"""kube-proxy (nftables mode) style ruleset for N ClusterIP services, for
`offcore bench svc` (scripts/bench/svc.sh loads it with `nft -f`).

The layout follows what kube-proxy's nftables proxier writes on a full sync
(pkg/proxy/nftables/proxier.go), ClusterIP parts only:

  table ip kube-proxy
    set cluster-ips, maps service-ips / no-endpoint-services / firewall-ips
    nat-prerouting, nat-output (dstnat)  -> jump services
    services: ip daddr . meta l4proto . th dport vmap @service-ips
    service-HASH-ns/name/tcp/port:  masquerade mark for off-cluster sources,
        numgen random mod N vmap { 0 : goto endpoint-..., 1 : goto ... }
    endpoint-HASH-ns/name/tcp/port__IP/PORT: hairpin mark, dnat to IP:PORT
    nat-postrouting -> masquerading (only marked packets)
    filter-* hooks: ct state new -> service-endpoints-check, cluster-ips-check

Like kube-proxy's knftables transactions, it is a list of `add` commands, so
one `nft -f` is one atomic transaction. Service 0 is the measured service
(`--first-backends`); services 1..N-1 share `--backends`. With `--from K`
only services K..N-1 are written, without the base table: what a sync adds
on top of a table that already holds services 0..K-1.

  svc_nft.py N --backends IP:PORT,IP:PORT [--first-backends IP:PORT,...]
             [--from K] [--vip-base 10.97.0.10] [--service-cidr 10.97.0.0/16]
             [--pod-cidr 172.31.0.0/16] [--port 80]
"""
import argparse
import base64
import hashlib
import ipaddress
import sys

TABLE = "ip kube-proxy"
MASQ_MARK = "0x4000"


def short_hash(text):
    # kube-proxy names chains "<prefix>-<8 chars of base32(sha256)>-<readable>"
    # so that names stay unique however the readable part is truncated.
    return base64.b32encode(hashlib.sha256(text.encode()).digest()).decode()[:8]


def base_rules(service_cidr):
    a = [
        f'add table {TABLE} {{ comment "rules for kube-proxy" ; }}',
        f'add set {TABLE} cluster-ips {{ type ipv4_addr ; comment "Active ClusterIPs" ; }}',
        f'add map {TABLE} firewall-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}',
        f'add map {TABLE} no-endpoint-services {{ type ipv4_addr . inet_proto . inet_service : verdict ; }}',
        f'add map {TABLE} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; '
        f'comment "ClusterIP, ExternalIP and LoadBalancer IP traffic" ; }}',
        f'add chain {TABLE} cluster-ips-check',
        f'add chain {TABLE} filter-prerouting-pre-dnat {{ type filter hook prerouting priority -110 ; }}',
        f'add chain {TABLE} filter-output-pre-dnat {{ type filter hook output priority -110 ; }}',
        f'add chain {TABLE} filter-forward {{ type filter hook forward priority 0 ; }}',
        f'add chain {TABLE} filter-input {{ type filter hook input priority 0 ; }}',
        f'add chain {TABLE} filter-output {{ type filter hook output priority 0 ; }}',
        f'add chain {TABLE} firewall-check',
        f'add chain {TABLE} mark-for-masquerade',
        f'add chain {TABLE} masquerading',
        f'add chain {TABLE} nat-output {{ type nat hook output priority -100 ; }}',
        f'add chain {TABLE} nat-postrouting {{ type nat hook postrouting priority 100 ; }}',
        f'add chain {TABLE} nat-prerouting {{ type nat hook prerouting priority -100 ; }}',
        f'add chain {TABLE} reject-chain',
        f'add chain {TABLE} services',
        f'add chain {TABLE} service-endpoints-check',
        f'add rule {TABLE} cluster-ips-check ip daddr @cluster-ips reject',
        f'add rule {TABLE} cluster-ips-check ip daddr {{ {service_cidr} }} drop',
        f'add rule {TABLE} filter-prerouting-pre-dnat ct state new jump firewall-check',
        f'add rule {TABLE} filter-forward ct state new jump service-endpoints-check',
        f'add rule {TABLE} filter-forward ct state new jump cluster-ips-check',
        f'add rule {TABLE} filter-input ct state new jump service-endpoints-check',
        f'add rule {TABLE} filter-output ct state new jump service-endpoints-check',
        f'add rule {TABLE} filter-output-pre-dnat ct state new jump firewall-check',
        f'add rule {TABLE} filter-output ct state new jump cluster-ips-check',
        f'add rule {TABLE} firewall-check ip daddr . meta l4proto . th dport vmap @firewall-ips',
        f'add rule {TABLE} mark-for-masquerade mark set mark or {MASQ_MARK}',
        f'add rule {TABLE} masquerading mark and {MASQ_MARK} == 0 return',
        f'add rule {TABLE} masquerading mark set mark xor {MASQ_MARK}',
        f'add rule {TABLE} masquerading masquerade fully-random',
        f'add rule {TABLE} nat-output jump services',
        f'add rule {TABLE} nat-postrouting jump masquerading',
        f'add rule {TABLE} nat-prerouting jump services',
        f'add rule {TABLE} reject-chain reject',
        f'add rule {TABLE} services ip daddr . meta l4proto . th dport vmap @service-ips',
        f'add rule {TABLE} service-endpoints-check ip daddr . meta l4proto . th dport vmap @no-endpoint-services',
    ]
    return a


def service_rules(name, vip, port, endpoints, pod_cidr):
    port_name = f"default/{name}/tcp/http"
    svc_chain = f"service-{short_hash(port_name)}-{port_name}"
    out = [f"add chain {TABLE} {svc_chain}"]
    # Traffic from outside the pod network is masqueraded so that replies
    # come back through this node; pod-to-service traffic is not.
    out.append(f"add rule {TABLE} {svc_chain} ip daddr {vip} ip saddr != {pod_cidr} jump mark-for-masquerade")
    ep_chains = []
    for ep in endpoints:
        ip, ep_port = ep.rsplit(":", 1)
        tail = f"{port_name}__{ip}/{ep_port}"
        chain = f"endpoint-{short_hash(tail)}-{tail}"
        ep_chains.append(chain)
        out.append(f"add chain {TABLE} {chain}")
        # Hairpin: an endpoint reaching its own service must be masqueraded.
        out.append(f"add rule {TABLE} {chain} ip saddr {ip} jump mark-for-masquerade")
        out.append(f"add rule {TABLE} {chain} meta l4proto tcp dnat to {ip}:{ep_port}")
    vmap = ", ".join(f"{i} : goto {c}" for i, c in enumerate(ep_chains))
    out.append(f"add rule {TABLE} {svc_chain} numgen random mod {len(ep_chains)} vmap {{ {vmap} }}")
    out.append(f"add element {TABLE} cluster-ips {{ {vip} }}")
    out.append(f"add element {TABLE} service-ips {{ {vip} . tcp . {port} : goto {svc_chain} }}")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("services", type=int, help="number of ClusterIP services (>= 1)")
    p.add_argument("--backends", required=True, help="IP:PORT,... shared by services 1..N-1")
    p.add_argument("--first-backends", help="IP:PORT,... of service 0 (default: --backends)")
    p.add_argument("--from", dest="first", type=int, default=0, help="write services FROM..N-1 only, no base table")
    p.add_argument("--vip-base", default="10.97.0.10", help="service i gets vip-base + i")
    p.add_argument("--service-cidr", default="10.97.0.0/16")
    p.add_argument("--pod-cidr", default="172.31.0.0/16", help="sources that are not masqueraded")
    p.add_argument("--port", type=int, default=80)
    a = p.parse_args()
    if a.services < 1 or not 0 <= a.first < a.services:
        p.error("need services >= 1 and 0 <= --from < services")
    cidr = ipaddress.ip_network(a.service_cidr)
    base = ipaddress.ip_address(a.vip_base)
    if base + (a.services - 1) not in cidr:
        p.error(f"{a.services} services from {base} do not fit in {cidr}")
    shared = a.backends.split(",")
    first = (a.first_backends or a.backends).split(",")
    lines = base_rules(a.service_cidr) if a.first == 0 else []
    for i in range(a.first, a.services):
        name = "web" if i == 0 else f"s-{i:05d}"
        lines += service_rules(name, str(base + i), a.port, first if i == 0 else shared, a.pod_cidr)
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
