// SPDX-License-Identifier: GPL-2.0
/* The offcore dataplane: one tc (clsact ingress, direct-action) program on
 * every interface of a node's SoC that carries tenant traffic: the pods'
 * representors, the host-VF, the uplink and the VXLAN device. What an
 * interface is comes from the `ifaces` map, so one program serves them all.
 *
 * Per packet:  classify -> reverse NAT (replies) or service DNAT (new and
 * tracked flows) -> route inside the packet's VPC: a local endpoint
 * (redirect to its representor), a remote one (VXLAN, VNI = VPC; or
 * natively routed on the fabric, see dataplane_abi.h), the
 * fabric (EIP replies), or drop. Nothing crosses VPCs except through a
 * Service's DNAT, which is the point.
 *
 * Maps are created by libbpf from the definitions below; the control plane
 * (src/net/bpf_dataplane.cc) fills them. The layouts are in dataplane_abi.h.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <linux/tcp.h>
#include <linux/udp.h>

#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "dataplane_abi.h"

char LICENSE[] SEC("license") = "GPL";

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, OC_MAX_IFACES);
  __type(key, __u32);
  __type(value, struct oc_iface_val);
} oc_ifaces SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, OC_MAX_ENDPOINTS);
  __type(key, struct oc_ep_key);
  __type(value, struct oc_ep_val);
} oc_endpoints SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, OC_MAX_NODES);
  __type(key, __u32);
  __type(value, struct oc_node_val);
} oc_nodes SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, OC_MAX_NODES);
  __type(key, struct oc_mac_key);
  __type(value, __u32);
} oc_node_macs SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LPM_TRIE);
  __uint(max_entries, OC_MAX_NATIVE_NETS);
  __uint(map_flags, BPF_F_NO_PREALLOC);
  __type(key, struct oc_lpm_v4);
  __type(value, struct oc_native_val);
} oc_native_nets SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_HASH);
  __uint(max_entries, OC_MAX_SERVICES);
  __type(key, struct oc_svc_key);
  __type(value, struct oc_svc_val);
} oc_services SEC(".maps");

/* Every service's Maglev table, back to back; mmap-able so the control plane
 * writes a table with memcpy instead of one syscall per slot. */
struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, OC_RING_SLOTS);
  __uint(map_flags, BPF_F_MMAPABLE);
  __type(key, __u32);
  __type(value, struct oc_ring_slot);
} oc_ring SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, OC_MAX_BACKENDS);
  __type(key, __u32);
  __type(value, struct oc_backend_val);
} oc_backends SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, OC_CT_ENTRIES);
  __type(key, struct oc_flow_key);
  __type(value, struct oc_ct_val);
} oc_ct SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, OC_CT_ENTRIES);
  __type(key, struct oc_flow_key);
  __type(value, struct oc_rev_val);
} oc_rev_nat SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_LRU_HASH);
  __uint(max_entries, OC_CT_ENTRIES);
  __type(key, struct oc_flow_key);
  __type(value, struct oc_return_val);
} oc_return_path SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_ARRAY);
  __uint(max_entries, 1);
  __type(key, __u32);
  __type(value, struct oc_config);
} oc_config SEC(".maps");

struct {
  __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
  __uint(max_entries, OC_STATS_MAX);
  __type(key, __u32);
  __type(value, __u64);
} oc_stats SEC(".maps");

#define IP_OFF ETH_HLEN
#define IP_CSUM_OFF (ETH_HLEN + offsetof(struct iphdr, check))
#define IP_SRC_OFF (ETH_HLEN + offsetof(struct iphdr, saddr))
#define IP_DST_OFF (ETH_HLEN + offsetof(struct iphdr, daddr))

struct packet {
  struct oc_flow_key flow; /* as it will leave: rewritten by NAT */
  __u32 l4_off;            /* 0: no ports (ICMP, fragments) */
  __u32 csum_off;          /* L4 checksum offset, 0 = none */
  __u32 icmp_off;          /* ICMP header offset, 0 = not ICMP */
  int udp;
  int tcp_syn;             /* a TCP SYN without ACK: a new connection */
  int from_plain_remote;   /* from another node (tunnel or native), from a plain pod of that node */
  __u32 from_native;       /* OC_EP_NATIVE when it came natively routed */
};

static __always_inline void count(__u32 stat) {
  __u64 *v = bpf_map_lookup_elem(&oc_stats, &stat);
  if (v) *v += 1;
}

static __always_inline int drop(__u32 stat) {
  count(stat);
  return TC_ACT_SHOT;
}

/* Returns 1 for IPv4, 0 for other ethertypes, -1 for a truncated frame. */
static __always_inline int parse(struct __sk_buff *skb, struct packet *p) {
  void *data = (void *)(long)skb->data;
  void *end = (void *)(long)skb->data_end;
  struct ethhdr *eth = data;
  if ((void *)(eth + 1) > end) return -1;
  if (eth->h_proto != bpf_htons(ETH_P_IP)) return 0;
  struct iphdr *ip = (void *)(eth + 1);
  if ((void *)(ip + 1) > end) return -1;
  if (ip->ihl < 5) return -1;
  p->flow.saddr = ip->saddr;
  p->flow.daddr = ip->daddr;
  p->flow.proto = ip->protocol;
  p->flow.sport = 0;
  p->flow.dport = 0;
  p->l4_off = 0;
  p->csum_off = 0;
  p->icmp_off = 0;
  p->udp = 0;
  p->tcp_syn = 0;
  /* Non-first fragments carry no ports; they route but never match a service. */
  if (ip->frag_off & bpf_htons(0x1fff)) return 1;
  __u32 l4 = ETH_HLEN + ip->ihl * 4;
  if (ip->protocol == IPPROTO_TCP) {
    struct tcphdr *tcp = data + l4;
    if ((void *)(tcp + 1) > end) return -1;
    p->flow.sport = tcp->source;
    p->flow.dport = tcp->dest;
    p->l4_off = l4;
    p->csum_off = l4 + offsetof(struct tcphdr, check);
    p->tcp_syn = tcp->syn && !tcp->ack;
  } else if (ip->protocol == IPPROTO_UDP) {
    struct udphdr *udp = data + l4;
    if ((void *)(udp + 1) > end) return -1;
    p->flow.sport = udp->source;
    p->flow.dport = udp->dest;
    p->l4_off = l4;
    p->csum_off = l4 + offsetof(struct udphdr, check);
    p->udp = 1;
  } else if (ip->protocol == IPPROTO_ICMP) {
    p->icmp_off = l4;
  }
  return 1;
}

/* Rewrites one address (and optionally its port) with checksum fix-ups.
 * is_src selects saddr/sport vs daddr/dport. */
static __always_inline int rewrite(struct __sk_buff *skb, struct packet *p, int is_src, __u32 new_ip,
                                   __u16 new_port) {
  __u32 old_ip = is_src ? p->flow.saddr : p->flow.daddr;
  __u16 old_port = is_src ? p->flow.sport : p->flow.dport;
  __u64 l4_flags = BPF_F_PSEUDO_HDR | sizeof(new_ip);
  if (p->udp) l4_flags |= BPF_F_MARK_MANGLED_0;
  if (old_ip != new_ip) {
    if (p->csum_off && bpf_l4_csum_replace(skb, p->csum_off, old_ip, new_ip, l4_flags) < 0) return -1;
    if (bpf_l3_csum_replace(skb, IP_CSUM_OFF, old_ip, new_ip, sizeof(new_ip)) < 0) return -1;
    if (bpf_skb_store_bytes(skb, is_src ? IP_SRC_OFF : IP_DST_OFF, &new_ip, sizeof(new_ip), 0) < 0) return -1;
  }
  if (p->l4_off && old_port != new_port) {
    __u64 pflags = p->udp ? BPF_F_MARK_MANGLED_0 | sizeof(new_port) : sizeof(new_port);
    if (bpf_l4_csum_replace(skb, p->csum_off, old_port, new_port, pflags) < 0) return -1;
    /* source and dest are the first two fields of both TCP and UDP headers */
    if (bpf_skb_store_bytes(skb, p->l4_off + (is_src ? 0 : 2), &new_port, sizeof(new_port), 0) < 0) return -1;
  }
  if (is_src) {
    p->flow.saddr = new_ip;
    p->flow.sport = new_port;
  } else {
    p->flow.daddr = new_ip;
    p->flow.dport = new_port;
  }
  return 0;
}

/* A reply of a flow we NATed (here or, for SNAT, at this node's gateway):
 * put the VIP back as its source. Returns 1 if rewritten, -1 on error. */
static __always_inline int reverse_nat(struct __sk_buff *skb, struct packet *p) {
  if (!p->l4_off) return 0;
  struct oc_rev_val *rev = bpf_map_lookup_elem(&oc_rev_nat, &p->flow);
  if (!rev) return 0;
  struct oc_rev_val r = *rev;
  if (rewrite(skb, p, 1, r.vip, r.vport) < 0) return -1;
  if ((r.flags & OC_REV_SNAT) && rewrite(skb, p, 0, r.client_ip, r.client_port) < 0) return -1;
  p->flow.vpc = r.vpc;
  count(OC_STAT_REV_NAT);
  return 1;
}

/* Picks (or recalls) the backend of a flow to a service.
 * Returns 1 if NATed, 0 if not a service, negative verdict-worthy errors. */
static __always_inline int service_nat(struct __sk_buff *skb, struct packet *p) {
  if (!p->l4_off) return 0;
  struct oc_svc_key sk = {.vpc = p->flow.vpc, .vip = p->flow.daddr, .port = p->flow.dport, .proto = p->flow.proto};
  struct oc_svc_val *svc = bpf_map_lookup_elem(&oc_services, &sk);
  if (!svc) return 0;
  struct oc_svc_val s = *svc;
  struct oc_flow_key client = p->flow;

  __u32 backend_id = 0;
  struct oc_backend_val *be = 0;
  struct oc_ct_val *ct = bpf_map_lookup_elem(&oc_ct, &client);
  if (ct && ct->svc_id == s.id) {
    backend_id = ct->backend_id;
    be = bpf_map_lookup_elem(&oc_backends, &backend_id);
    if (be && !be->flags) be = 0; /* its backend is gone: choose again */
    if (be) count(OC_STAT_CT_HIT);
  }
  if (!be) {
    if (s.ring_size == 0) return -2;
    __u32 hash = oc_flow_hash(client.saddr, client.daddr, client.sport, client.dport, client.proto);
    __u32 slot = s.ring_offset + hash % s.ring_size;
    struct oc_ring_slot *rs = bpf_map_lookup_elem(&oc_ring, &slot);
    if (!rs || rs->backend_id == 0) return -2;
    backend_id = rs->backend_id;
    be = bpf_map_lookup_elem(&oc_backends, &backend_id);
    if (!be || !be->flags) return -2;
    struct oc_ct_val nv = {.backend_id = backend_id, .svc_id = s.id, .last_seen_ns = bpf_ktime_get_ns()};
    bpf_map_update_elem(&oc_ct, &client, &nv, BPF_ANY);
    count(OC_STAT_DNAT);
  }
  struct oc_backend_val b = *be;

  if (rewrite(skb, p, 0, b.ip, b.port) < 0) return -1;
  struct oc_rev_val rv = {.vpc = client.vpc, .vip = client.daddr, .vport = client.dport};
  if (s.flags & OC_SVC_SNAT) {
    if (rewrite(skb, p, 1, s.snat_ip, client.sport) < 0) return -1;
    rv.flags = OC_REV_SNAT;
    rv.client_ip = client.saddr;
    rv.client_port = client.sport;
  }
  p->flow.vpc = b.vpc;
  /* The reply, as it will arrive: backend -> (client or gateway). */
  struct oc_flow_key reply = {.vpc = b.vpc, .saddr = b.ip, .daddr = p->flow.saddr, .sport = b.port,
                              .dport = p->flow.sport, .proto = p->flow.proto};
  /* Every packet of the flow passes here; an LRU update per packet costs
   * an element allocation and a bucket lock, a lookup does not. Write only
   * when the entry is missing (new flow, or evicted) or differs. */
  struct oc_rev_val *cur = bpf_map_lookup_elem(&oc_rev_nat, &reply);
  if (!cur || cur->vpc != rv.vpc || cur->vip != rv.vip || cur->vport != rv.vport || cur->flags != rv.flags ||
      cur->client_ip != rv.client_ip || cur->client_port != rv.client_port)
    bpf_map_update_elem(&oc_rev_nat, &reply, &rv, BPF_ANY);
  return 1;
}

/* The pods' gateway answers ping itself: the SoC's stack has no route
 * back to a pod (routing is per VPC, here), so an echo request to
 * 169.254.1.1 becomes its reply in place and goes back out the same VF. */
static __always_inline int answer_gateway_ping(struct __sk_buff *skb, struct packet *p) {
  __u8 type = 0;
  if (bpf_skb_load_bytes(skb, p->icmp_off, &type, 1) < 0 || type != 8) return -1;
  __u8 macs[12];
  if (bpf_skb_load_bytes(skb, 0, macs, sizeof(macs)) < 0) return -1;
  __u8 swapped[12];
  __builtin_memcpy(swapped, macs + 6, 6);
  __builtin_memcpy(swapped + 6, macs, 6);
  if (bpf_skb_store_bytes(skb, 0, swapped, sizeof(swapped), 0) < 0) return -1;
  /* Swapping the addresses leaves the IP checksum as it was. */
  __u32 addrs[2] = {p->flow.daddr, p->flow.saddr};
  if (bpf_skb_store_bytes(skb, IP_SRC_OFF, addrs, sizeof(addrs), 0) < 0) return -1;
  __u16 old_word = bpf_htons(8 << 8), new_word = bpf_htons(0);
  if (bpf_l4_csum_replace(skb, p->icmp_off + 2, old_word, new_word, sizeof(new_word)) < 0) return -1;
  __u8 reply = 0;
  if (bpf_skb_store_bytes(skb, p->icmp_off, &reply, 1, 0) < 0) return -1;
  count(OC_STAT_STACK);
  return bpf_redirect(skb->ifindex, 0);
}

#define OC_AF_INET 2

/* To another node: natively routed (the packet as it is, to the node's
 * fabric address as next hop; the kernel's neighbour table fills in the
 * MACs) or through the VXLAN device (VNI = VPC). */
static __always_inline int to_node(struct __sk_buff *skb, struct packet *p, __u32 node_ip, __u32 flags,
                                   const struct oc_config *cfg) {
  if (flags & OC_EP_NATIVE) {
    struct bpf_redir_neigh nh = {.nh_family = OC_AF_INET, .ipv4_nh = node_ip};
    count(OC_STAT_NATIVE);
    return bpf_redirect_neigh(cfg->uplink_ifindex, &nh, sizeof(nh), 0);
  }
  struct bpf_tunnel_key key = {};
  key.remote_ipv4 = bpf_ntohl(node_ip);
  key.tunnel_id = p->flow.vpc;
  key.tunnel_ttl = 64;
  if (bpf_skb_set_tunnel_key(skb, &key, sizeof(key), BPF_F_ZERO_CSUM_TX) < 0) return drop(OC_STAT_DROP_NO_ROUTE);
  count(OC_STAT_TUNNEL);
  return bpf_redirect(cfg->tunnel_ifindex, 0);
}

static __always_inline int to_local(struct __sk_buff *skb, const struct oc_ep_val *ep) {
  if (bpf_skb_store_bytes(skb, 0, ep->mac, ETH_ALEN, 0) < 0) return drop(OC_STAT_DROP_MALFORMED);
  count(OC_STAT_LOCAL);
  return bpf_redirect(ep->ifindex, 0);
}

/* The return path of a flow that came in from another node and whose peer
 * is no endpoint here (an EIP client, a service gateway): remember who sent
 * it, so the reply goes back through the node that holds its NAT state. */
static __always_inline void learn_return_path(struct packet *p, __u32 from_node) {
  if (!p->l4_off || !from_node) return;
  struct oc_ep_key src = {.vpc = p->flow.vpc, .ip = p->flow.saddr};
  if (bpf_map_lookup_elem(&oc_endpoints, &src)) return;
  struct oc_flow_key reply = {.vpc = p->flow.vpc, .saddr = p->flow.daddr, .daddr = p->flow.saddr,
                              .sport = p->flow.dport, .dport = p->flow.sport, .proto = p->flow.proto};
  /* Per packet: write only what changed (see service_nat). */
  struct oc_return_val *cur = bpf_map_lookup_elem(&oc_return_path, &reply);
  if (cur && cur->node_ip == from_node && cur->flags == p->from_native) return;
  struct oc_return_val rv = {.node_ip = from_node, .flags = p->from_native};
  bpf_map_update_elem(&oc_return_path, &reply, &rv, BPF_ANY);
}

/* Hands a packet to the SoC's stack for the mesh's nftables rules. A frame
 * from the tunnel is addressed to the MAC its sender's pod used, not to
 * ocvx0's: as PACKET_OTHERHOST, IP would drop it before prerouting. */
static __always_inline int to_mesh(struct __sk_buff *skb, __u32 mark, __u32 stat) {
  if (skb->pkt_type != PACKET_HOST && bpf_skb_change_type(skb, PACKET_HOST) < 0) return drop(OC_STAT_DROP_MALFORMED);
  skb->mark = mark;
  count(stat);
  return TC_ACT_OK;
}

/* Whether the SoC's stack holds a socket of this packet's connection: the
 * node proxy's accepted socket, or its upstream socket bound to a pod's
 * address (a handshake in progress and TIME_WAIT count). A listener does
 * not: it only says the SoC listens on the destination port. One hash lookup
 * in the SoC's namespace (the one of the interface the packet came in on);
 * the callers ask only on the narrow paths where the answer can be yes. */
static __always_inline int proxy_holds(struct __sk_buff *skb, const struct packet *p) {
  struct bpf_sock_tuple t = {};
  t.ipv4.saddr = p->flow.saddr;
  t.ipv4.daddr = p->flow.daddr;
  t.ipv4.sport = p->flow.sport;
  t.ipv4.dport = p->flow.dport;
  struct bpf_sock *sk = bpf_skc_lookup_tcp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
  if (!sk) return 0;
  int held = sk->state != BPF_TCP_LISTEN;
  bpf_sk_release(sk);
  return held;
}

/* A mesh pod's TCP goes to the node proxy when it is for a Service, a local
 * pod, or a mesh pod elsewhere (tunnelled by the proxies). A plain pod on
 * another node is reached directly, as without the mesh, except for the
 * pod's replies to the proxy, which connected to it from that plain pod's
 * address (an inbound connection that came over the tunnel). A SYN is never
 * such a reply, so the pod's own new connections cost no lookup. */
static __always_inline int mesh_outbound(struct __sk_buff *skb, struct packet *p) {
  if (p->flow.proto != IPPROTO_TCP || !p->l4_off) return 0;
  struct oc_svc_key sk = {.vpc = p->flow.vpc, .vip = p->flow.daddr, .port = p->flow.dport, .proto = IPPROTO_TCP};
  if (bpf_map_lookup_elem(&oc_services, &sk)) return 1;
  struct oc_ep_key dst = {.vpc = p->flow.vpc, .ip = p->flow.daddr};
  struct oc_ep_val *ep = bpf_map_lookup_elem(&oc_endpoints, &dst);
  if (!ep) return 0;
  if (ep->flags & (OC_EP_LOCAL | OC_EP_MESH)) return 1;
  return (ep->flags & OC_EP_REMOTE) && !p->tcp_syn && proxy_holds(skb, p);
}

/* Untranslated TCP to a local mesh pod that the node proxy takes (inbound):
 * from a local pod, or over the tunnel from a plain pod on another node; a
 * new connection (SYN: TPROXY to the inbound listener) or a packet of one the
 * proxy holds (its accepted socket, or a reply to an upstream socket).
 * Anything else is delivered directly: a plain pod's packet of a connection
 * the proxy does not hold (the pod resets it), and the replies of a mesh
 * pod's own direct connections to plain pods elsewhere. */
static __always_inline int mesh_inbound(struct __sk_buff *skb, const struct packet *p, __u32 in_flags) {
  if (p->flow.proto != IPPROTO_TCP || !p->l4_off) return 0;
  if (!(in_flags & OC_IF_POD) && !((in_flags & OC_IF_TUNNEL) && p->from_plain_remote)) return 0;
  return p->tcp_syn || proxy_holds(skb, p);
}

/* A mesh return link carries what the node proxy's sockets send to a plain
 * pod on another node (see OC_IF_PROXY): TCP from a local mesh pod's address
 * to a remote plain pod, tunnelled to that pod's node. Anything else is no
 * one's (the SoC forwards nothing into the link: the mesh's nft table). */
static __always_inline int from_proxy(struct __sk_buff *skb, struct packet *p, const struct oc_config *cfg) {
  if (p->flow.proto != IPPROTO_TCP || !p->l4_off) return drop(OC_STAT_DROP_SPOOF);
  struct oc_ep_key src = {.vpc = p->flow.vpc, .ip = p->flow.saddr};
  struct oc_ep_val *sep = bpf_map_lookup_elem(&oc_endpoints, &src);
  if (!sep || (sep->flags & (OC_EP_LOCAL | OC_EP_MESH)) != (OC_EP_LOCAL | OC_EP_MESH)) return drop(OC_STAT_DROP_SPOOF);
  struct oc_ep_key dst = {.vpc = p->flow.vpc, .ip = p->flow.daddr};
  struct oc_ep_val *dep = bpf_map_lookup_elem(&oc_endpoints, &dst);
  if (!dep || (dep->flags & (OC_EP_REMOTE | OC_EP_MESH)) != OC_EP_REMOTE) return drop(OC_STAT_DROP_NO_ROUTE);
  return to_node(skb, p, dep->node_ip, dep->flags, cfg);
}

static __always_inline int route(struct __sk_buff *skb, struct packet *p, __u32 in_flags, __u32 from_node,
                                 const struct oc_config *cfg, int translated) {
  struct oc_ep_key dst = {.vpc = p->flow.vpc, .ip = p->flow.daddr};
  struct oc_ep_val *ep = bpf_map_lookup_elem(&oc_endpoints, &dst);
  if (ep) {
    struct oc_ep_val e = *ep;
    if (e.flags & OC_EP_LOCAL) {
      if ((e.flags & OC_EP_MESH) && !translated && mesh_inbound(skb, p, in_flags))
        return to_mesh(skb, OC_MARK_MESH_IN, OC_STAT_MESH_IN);
      if (in_flags & OC_IF_TUNNEL) learn_return_path(p, from_node);
      return to_local(skb, &e);
    }
    /* What another node routed here natively is never routed on: two nodes
     * that disagree about where an address is would bounce it between them
     * forever (nothing decrements its TTL). */
    if ((e.flags & OC_EP_REMOTE) && p->from_native) return drop(OC_STAT_DROP_NO_ROUTE);
    if (e.flags & OC_EP_REMOTE) return to_node(skb, p, e.node_ip, e.flags, cfg);
  }
  if (p->flow.vpc == OC_VPC_EXTERNAL) {
    count(OC_STAT_UPLINK);
    return bpf_redirect_neigh(cfg->uplink_ifindex, 0, 0, 0);
  }
  if (p->l4_off) {
    struct oc_return_val *rp = bpf_map_lookup_elem(&oc_return_path, &p->flow);
    if (rp && !p->from_native) return to_node(skb, p, rp->node_ip, rp->flags, cfg);
  }
  return drop(OC_STAT_DROP_NO_ROUTE);
}

SEC("tc")
int oc_ingress(struct __sk_buff *skb) {
  __u32 ifindex = skb->ifindex;
  struct oc_iface_val *ifv = bpf_map_lookup_elem(&oc_ifaces, &ifindex);
  if (!ifv) return TC_ACT_OK;
  struct oc_iface_val in = *ifv;
  __u32 zero = 0;
  struct oc_config *cfgp = bpf_map_lookup_elem(&oc_config, &zero);
  if (!cfgp) return TC_ACT_OK;
  struct oc_config cfg = *cfgp;
  count(OC_STAT_RX);

  struct packet p = {};
  int parsed = parse(skb, &p);
  if (parsed < 0) return drop(OC_STAT_DROP_MALFORMED);
  /* ARP (the SoC answers for the pods' gateway) and anything not IPv4 that
   * the SoC itself may want; pods get no other L2 protocol through. */
  if (parsed == 0) {
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) <= end && eth->h_proto == bpf_htons(ETH_P_ARP)) return TC_ACT_OK;
    if (in.flags & OC_IF_POD) return drop(OC_STAT_DROP_MALFORMED);
    return TC_ACT_OK;
  }
  /* The fabric is one shared segment: a frame its bridge floods (to a MAC
   * it has not learnt, as right after an EIP moved) reaches every node's
   * uplink. Only the node it is addressed to takes it, or an EIP or a
   * service gateway would answer from two nodes; the stack drops the rest. */
  if ((in.flags & OC_IF_UPLINK) && skb->pkt_type == PACKET_OTHERHOST) {
    count(OC_STAT_STACK);
    return TC_ACT_OK;
  }

  __u32 from_node = 0;
  p.flow.vpc = in.vpc;
  /* Natively routed from another node: on the uplink, a destination in a
   * native VPC's prefixes, or (the reply of a flow that node NATed for an EIP
   * or a service gateway: going back to be translated) a source in them. It
   * is that node's only if the frame comes from the node's uplink MAC; from
   * then on it is treated as if it had come through the tunnel. */
  int native_reply_only = 0;
  /* The SoC's own fabric traffic (VXLAN, NVMe/TCP, the agents' API...) is
   * addressed to its fabric address, which no VPC may hold: such a frame is
   * a native VPC's only as a reply, to the address this node's service
   * gateway translates to (SNAT). */
  if (in.flags & OC_IF_UPLINK) {
    struct oc_lpm_v4 lk = {.prefixlen = 32, .addr = p.flow.daddr};
    struct oc_native_val *nv = 0;
    if (p.flow.daddr != cfg.node_ip) nv = bpf_map_lookup_elem(&oc_native_nets, &lk);
    if (!nv) {
      lk.addr = p.flow.saddr;
      nv = bpf_map_lookup_elem(&oc_native_nets, &lk);
      native_reply_only = nv != 0;
    }
    if (nv) {
      struct oc_mac_key mk = {};
      if (bpf_skb_load_bytes(skb, ETH_ALEN, mk.mac, ETH_ALEN) < 0) return drop(OC_STAT_DROP_MALFORMED);
      __u32 *node = bpf_map_lookup_elem(&oc_node_macs, &mk);
      if (!node || *node == cfg.node_ip) return drop(OC_STAT_DROP_TUNNEL);
      p.flow.vpc = nv->vpc;
      from_node = *node;
      p.from_native = OC_EP_NATIVE;
      in.flags = OC_IF_TUNNEL;
    }
  } else if (in.flags & OC_IF_TUNNEL) {
    struct bpf_tunnel_key key = {};
    if (bpf_skb_get_tunnel_key(skb, &key, sizeof(key), 0) < 0) return drop(OC_STAT_DROP_MALFORMED);
    p.flow.vpc = key.tunnel_id;
    from_node = bpf_htonl(key.remote_ipv4);
    /* VXLAN is anyone's to send: accept it only from the cluster's nodes. */
    if (!bpf_map_lookup_elem(&oc_nodes, &from_node)) return drop(OC_STAT_DROP_TUNNEL);
  }
  if (from_node) {
    /* An inner source that is a known endpoint only from its own node. (An
     * unknown source is an EIP client or a Service's caller that the sending
     * node translated; see learn_return_path.) */
    struct oc_ep_key src = {.vpc = p.flow.vpc, .ip = p.flow.saddr};
    struct oc_ep_val *sep = bpf_map_lookup_elem(&oc_endpoints, &src);
    if (sep && !((sep->flags & OC_EP_REMOTE) && sep->node_ip == from_node)) return drop(OC_STAT_DROP_TUNNEL);
    p.from_plain_remote = sep && !(sep->flags & OC_EP_MESH);
  }
  if (in.flags & OC_IF_POD) {
    if (in.ip && p.flow.saddr != in.ip) return drop(OC_STAT_DROP_SPOOF);
    /* The SoC's own conversations with a pod (health probes, pings of the
     * gateway) end in the SoC's stack. */
    if (p.flow.daddr == cfg.gateway_ip) {
      if (p.icmp_off) {
        int r = answer_gateway_ping(skb, &p);
        if (r >= 0) return r;
      }
      count(OC_STAT_STACK);
      return TC_ACT_OK;
    }
  }

  if (in.flags & OC_IF_PROXY) return from_proxy(skb, &p, &cfg);

  int r = reverse_nat(skb, &p);
  if (r < 0) return drop(OC_STAT_DROP_MALFORMED);
  int translated = r;
  /* From a native VPC's address to no native address, and no reply of ours:
   * another node's own traffic (its host domain's, say), as before. */
  if (native_reply_only && r == 0) {
    count(OC_STAT_STACK);
    return TC_ACT_OK;
  }
  /* A mesh pod's TCP, unless it is the reply of a flow NATed here. */
  if (r == 0 && (in.flags & OC_IF_MESH) && mesh_outbound(skb, &p)) return to_mesh(skb, OC_MARK_MESH_OUT, OC_STAT_MESH_OUT);
  if (r == 0) {
    r = service_nat(skb, &p);
    if (r == -2) return drop(OC_STAT_DROP_NO_BACKEND);
    if (r < 0) return drop(OC_STAT_DROP_MALFORMED);
    translated = r;
    /* A new connection that is no Service's may reuse the 5-tuple of an
     * old NATed one whose reverse entry outlived it (LRU, no TCP state):
     * drop that entry, or the reply would be rewritten to the old VIP. */
    if (r == 0 && p.tcp_syn) {
      struct oc_flow_key reply = {.vpc = p.flow.vpc, .saddr = p.flow.daddr, .daddr = p.flow.saddr,
                                  .sport = p.flow.dport, .dport = p.flow.sport, .proto = p.flow.proto};
      bpf_map_delete_elem(&oc_rev_nat, &reply);
    }
    /* The uplink and the host-VF also carry the SoC's and the host's own
     * traffic; only what we translated is ours. */
    if (r == 0 && (in.flags & (OC_IF_UPLINK | OC_IF_HOST))) {
      struct oc_ep_key dst = {.vpc = p.flow.vpc, .ip = p.flow.daddr};
      if ((in.flags & OC_IF_UPLINK) || !bpf_map_lookup_elem(&oc_endpoints, &dst)) {
        count(OC_STAT_STACK);
        return TC_ACT_OK;
      }
    }
  }
  return route(skb, &p, in.flags, from_node, &cfg, translated);
}
