/* The one ABI between the eBPF dataplane (dataplane.bpf.c) and its C++
 * control plane (src/net/bpf_dataplane.cc). Both sides include this file; there
 * is no second copy. Layout changes are caught at compile time by the
 * _Static_assert/static_assert lines at the bottom, on both sides.
 *
 * Byte order: every IPv4 address and L4 port in a map key or value is in
 * network order, as it sits in the packet, so the fast path never swaps.
 * Node addresses in oc_ep_val.node_ip are network order too; the program
 * swaps them once for bpf_skb_set_tunnel_key, which wants host order.
 */
#ifndef OFFCORE_NET_BPF_DATAPLANE_ABI_H
#define OFFCORE_NET_BPF_DATAPLANE_ABI_H

#include <linux/types.h>

/* The layout version of the maps below. Maps are pinned per version
 * (<run_dir>/bpf/maps-v<N>): an agent of another layout starts with fresh
 * maps (losing conntrack once) instead of failing to reuse pinned maps of
 * the wrong size. Raise it with any key/value/capacity change. */
#define OC_ABI_VERSION 3

/* Map capacities. The control plane creates nothing; sizes live here only. */
#define OC_MAX_IFACES 4096
#define OC_MAX_ENDPOINTS 65536
#define OC_MAX_SERVICES 65536    /* one entry per (service, port) */
#define OC_MAX_BACKENDS 65536    /* one entry per (backend, target port) */
#define OC_RING_SLOTS 8388608    /* all Maglev tables, back to back: 10k Services of 5 backends take 5M (64 MiB) */
#define OC_CT_ENTRIES 262144
#define OC_MAX_NODES 4096
#define OC_MAX_NATIVE_NETS 16384 /* subnets (and node host /32s) of native-routed VPCs */
#define OC_STATS_MAX 16

/* VPC 0 is the fabric itself: EIPs and fabric hosts live there. */
#define OC_VPC_EXTERNAL 0

/* oc_iface_val.flags: what an interface with our tc program is. */
#define OC_IF_POD 0x1     /* a representor: traffic from one pod's VF */
#define OC_IF_HOST 0x2    /* the host-VF: the node's host domain */
#define OC_IF_UPLINK 0x4  /* up0: the fabric (EIP traffic) */
#define OC_IF_TUNNEL 0x8  /* the VXLAN device: other nodes' SoCs */
#define OC_IF_MESH 0x10   /* with OC_IF_POD: the pod is in the service mesh */
#define OC_IF_PROXY 0x20  /* a mesh return link: what the node proxy sends to plain pods on other nodes */

/* oc_ep_val.flags */
#define OC_EP_LOCAL 0x1   /* deliver with bpf_redirect to ifindex */
#define OC_EP_REMOTE 0x2  /* VXLAN to node_ip, VNI = VPC */
#define OC_EP_MESH 0x4    /* the endpoint is a mesh pod (reached through its node's proxy) */
#define OC_EP_NATIVE 0x8  /* with OC_EP_REMOTE: its VPC is routed natively (no encapsulation) */

/* Native routing (a VPC's spec.routing: native): a packet for another node
 * leaves on the uplink as it is, sent to that node's fabric address as the
 * next hop (bpf_redirect_neigh), so the wire carries no VNI. The receiver
 * finds the VPC from the destination address (oc_native_nets: the VPC's
 * subnets, which overlap no other VPC's) and the sending node from the
 * frame's source MAC (oc_node_macs: the nodes' uplinks); anything else for
 * those addresses is dropped. */

/* Service mesh interception (src/mesh, docs/MESH.md). The program hands a
 * mesh pod's TCP to the SoC's stack with skb->mark set; the mesh's nftables
 * rules turn the marks into TPROXY (new connections) or local delivery to
 * the proxy's transparent sockets (packets of proxied connections). */
#define OC_MARK_MESH_OUT 0x4f430001u /* from a mesh pod: outbound capture */
#define OC_MARK_MESH_IN 0x4f430002u  /* to a local mesh pod from a plain pod (local or remote): inbound capture */
#define OC_MARK_MESH_LOCAL 0x4f430010u /* set by nftables: route to the proxy (policy routing) */

/* oc_svc_val.flags */
#define OC_SVC_SNAT 0x1   /* service gateway: SNAT to snat_ip (scope cluster) */

/* oc_rev_val.flags */
#define OC_REV_SNAT 0x1   /* restore the client's address and port too */

/* Counters in the per-CPU stats array. */
enum oc_stat {
  OC_STAT_RX = 0,
  OC_STAT_LOCAL = 1,         /* redirected to a local endpoint */
  OC_STAT_TUNNEL = 2,        /* sent to another node */
  OC_STAT_UPLINK = 3,        /* sent to the fabric */
  OC_STAT_STACK = 4,         /* handed to the SoC's kernel (ARP, probes, host) */
  OC_STAT_DNAT = 5,          /* new service flows */
  OC_STAT_CT_HIT = 6,
  OC_STAT_REV_NAT = 7,
  OC_STAT_DROP_SPOOF = 8,
  OC_STAT_DROP_NO_ROUTE = 9, /* includes every cross-VPC attempt */
  OC_STAT_DROP_NO_BACKEND = 10,
  OC_STAT_DROP_MALFORMED = 11,
  OC_STAT_DROP_TUNNEL = 12,  /* VXLAN from no node of the cluster, or a forged inner source */
  OC_STAT_MESH_OUT = 13,     /* a mesh pod's TCP handed to the node proxy */
  OC_STAT_MESH_IN = 14,      /* TCP to a local mesh pod handed to the node proxy */
  OC_STAT_NATIVE = 15,       /* sent to another node natively routed (not counted in OC_STAT_TUNNEL) */
};

struct oc_iface_val {
  __u32 vpc;
  __u32 ip;   /* the pod's address (anti-spoofing); 0 = not checked */
  __u32 flags;
};

/* oc_nodes: the cluster's nodes by fabric address (network order); VXLAN is
 * accepted only from these. */
struct oc_node_val {
  __u8 mac[6]; /* its uplink's MAC: native-routed frames come from it; zero = unknown */
  __u16 flags; /* reserved, 0 */
};

/* oc_node_macs: a node's uplink MAC -> its fabric address (network order). */
struct oc_mac_key {
  __u8 mac[6];
  __u16 pad;
};

/* oc_native_nets (LPM trie): prefix -> the native-routed VPC it belongs to. */
struct oc_lpm_v4 {
  __u32 prefixlen;
  __u32 addr; /* network order */
};

struct oc_native_val {
  __u32 vpc;
  __u32 pad;
};

struct oc_ep_key {
  __u32 vpc;
  __u32 ip;
};

struct oc_ep_val {
  __u32 ifindex;  /* OC_EP_LOCAL: the representor (or host-VF) */
  __u32 node_ip;  /* OC_EP_REMOTE: the other node's uplink address */
  __u8 mac[6];    /* OC_EP_LOCAL: the endpoint's own MAC */
  __u16 flags;
};

struct oc_svc_key {
  __u32 vpc;  /* OC_VPC_EXTERNAL for an EIP */
  __u32 vip;
  __u16 port;
  __u8 proto; /* IPPROTO_TCP or IPPROTO_UDP */
  __u8 pad;
};

struct oc_svc_val {
  __u32 id;
  __u32 ring_offset; /* first slot of this service's Maglev table */
  __u32 ring_size;   /* a prime; 0 = no healthy backend */
  __u32 flags;
  __u32 snat_ip;     /* OC_SVC_SNAT: the gateway's own address */
};

/* A Maglev slot: a backend id, 0 = none. Array maps store every element
 * at an 8-byte stride, so the slot says so instead of the mmap user
 * having to know it. */
struct oc_ring_slot {
  __u32 backend_id;
  __u32 pad;
};

struct oc_backend_val {
  __u32 vpc;
  __u32 ip;
  __u16 port;
  __u16 flags;  /* non-zero = present */
};

/* A flow as the packet carries it, in the VPC it is seen in. */
struct oc_flow_key {
  __u32 vpc;
  __u32 saddr;
  __u32 daddr;
  __u16 sport;
  __u16 dport;
  __u8 proto;
  __u8 pad[3];
};

/* ct: client -> VIP flow -> the backend it was given. */
struct oc_ct_val {
  __u32 backend_id;
  __u32 svc_id;
  __u64 last_seen_ns;
};

/* rev_nat: backend -> client (or -> gateway) reply flow -> what to restore. */
struct oc_rev_val {
  __u32 vpc;          /* the client's VPC */
  __u32 vip;
  __u32 client_ip;    /* OC_REV_SNAT */
  __u16 vport;
  __u16 client_port;  /* OC_REV_SNAT */
  __u32 flags;
};

/* return_path: a reply flow whose peer is no endpoint (an EIP client, a
 * service gateway) -> the node that sent us its first packet. */
struct oc_return_val {
  __u32 node_ip;
  __u32 flags; /* OC_EP_NATIVE: the flow came natively routed */
};

struct oc_config {
  __u32 node_ip;          /* this node's uplink address */
  __u32 tunnel_ifindex;
  __u32 uplink_ifindex;
  __u32 gateway_ip;       /* 169.254.1.1: the pods' next hop, owned by the SoC */
  __u8 tunnel_mac[6];     /* source MAC for frames we hand the VXLAN device */
  __u16 pad;
};

/* The flow hash Maglev indexes with. The control plane uses the same
 * function to predict a flow's backend in tests and tools; it must not depend
 * on anything but the 5-tuple. (A murmur3-style finaliser over the fields:
 * cheap, no loops, accepted by the verifier.) */
static inline __u32 oc_mix32(__u32 h) {
  h ^= h >> 16;
  h *= 0x85ebca6bu;
  h ^= h >> 13;
  h *= 0xc2b2ae35u;
  h ^= h >> 16;
  return h;
}

static inline __u32 oc_flow_hash(__u32 saddr, __u32 daddr, __u16 sport, __u16 dport, __u8 proto) {
  __u32 h = 0x9e3779b9u ^ proto;
  h = oc_mix32(h ^ saddr);
  h = oc_mix32(h ^ daddr);
  h = oc_mix32(h ^ (((__u32)sport << 16) | dport));
  return h;
}

#ifdef __cplusplus
#define OC_ABI_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define OC_ABI_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

OC_ABI_ASSERT(sizeof(struct oc_iface_val) == 12, "oc_iface_val layout");
OC_ABI_ASSERT(sizeof(struct oc_ep_key) == 8, "oc_ep_key layout");
OC_ABI_ASSERT(sizeof(struct oc_node_val) == 8, "oc_node_val layout");
OC_ABI_ASSERT(sizeof(struct oc_mac_key) == 8, "oc_mac_key layout");
OC_ABI_ASSERT(sizeof(struct oc_lpm_v4) == 8, "oc_lpm_v4 layout: prefixlen first, as the LPM trie wants");
OC_ABI_ASSERT(sizeof(struct oc_native_val) == 8, "oc_native_val layout");
OC_ABI_ASSERT(sizeof(struct oc_ep_val) == 16, "oc_ep_val layout");
OC_ABI_ASSERT(sizeof(struct oc_svc_key) == 12, "oc_svc_key layout");
OC_ABI_ASSERT(sizeof(struct oc_svc_val) == 20, "oc_svc_val layout");
OC_ABI_ASSERT(sizeof(struct oc_ring_slot) == 8, "oc_ring_slot layout: the array map's element stride");
OC_ABI_ASSERT(sizeof(struct oc_backend_val) == 12, "oc_backend_val layout");
OC_ABI_ASSERT(sizeof(struct oc_flow_key) == 20, "oc_flow_key layout");
OC_ABI_ASSERT(sizeof(struct oc_ct_val) == 16, "oc_ct_val layout");
OC_ABI_ASSERT(sizeof(struct oc_rev_val) == 20, "oc_rev_val layout");
OC_ABI_ASSERT(sizeof(struct oc_return_val) == 8, "oc_return_val layout");
OC_ABI_ASSERT(sizeof(struct oc_config) == 24, "oc_config layout");

#endif
