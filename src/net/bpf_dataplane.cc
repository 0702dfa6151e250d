#include "net/bpf_dataplane.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/files.h"
#include "dataplane.skel.h"

namespace offcore {

namespace {

Error bpfError(const std::string& what, int err) {
  if (err < 0) err = -err;
  return makeError(what + ": " + std::strerror(err), err);
}

bool zeroMac(const uint8_t* mac) {
  static constexpr uint8_t kZero[6] = {};
  return std::memcmp(mac, kZero, sizeof kZero) == 0;
}

Status checkBpf(int rc, const std::string& what) {
  if (rc < 0) return bpfError(what, rc == -1 ? errno : rc);
  return okStatus();
}

// libbpf prints through a callback; route its warnings to our log, drop its debug chatter.
int libbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  if (level == LIBBPF_DEBUG) return 0;
  // bpf_tc_hook_create on an interface that already has clsact: expected.
  if (std::strstr(fmt, "Kernel error message") != nullptr) return 0;
  return std::vfprintf(stderr, fmt, args);
}

class BpfDataplane final : public Dataplane {
 public:
  ~BpfDataplane() override {
    if (ring_ != nullptr) ::munmap(ring_, ringBytes());
    if (skel_ != nullptr) oc_dataplane__destroy(skel_);
  }

  Status open(const std::string& pin_dir) {
    libbpf_set_print(libbpfPrint);
    skel_ = oc_dataplane__open();
    if (skel_ == nullptr) return bpfError("open the BPF dataplane", errno);
    if (!pin_dir.empty()) {
      OC_TRY(makeDirs(pin_dir));
      bpf_map* map;
      bpf_object__for_each_map(map, skel_->obj) {
        std::string path = pin_dir + "/" + bpf_map__name(map);
        OC_TRY(checkBpf(bpf_map__set_pin_path(map, path.c_str()), "pin path " + path));
      }
    }
    if (int rc = oc_dataplane__load(skel_); rc != 0) {
      return bpfError("load the BPF dataplane (the verifier log is above; is this kernel >= 5.10?)", rc);
    }
    void* ring = ::mmap(nullptr, ringBytes(), PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(skel_->maps.oc_ring), 0);
    if (ring == MAP_FAILED) return bpfError("mmap the Maglev ring map", errno);
    ring_ = static_cast<oc_ring_slot*>(ring);
    return okStatus();
  }

  Status setConfig(const oc_config& config) override {
    uint32_t zero = 0;
    return update(skel_->maps.oc_config, &zero, &config, "config");
  }

  Status attach(const std::string& ifname, const oc_iface_val& role) override {
    unsigned ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) return makeError("attach to " + ifname + ": no such interface in this namespace");
    uint32_t key = ifindex;
    // Record the role before the program can see a packet from it.
    OC_TRY(update(skel_->maps.oc_ifaces, &key, &role, "interface " + ifname));
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
    int rc = bpf_tc_hook_create(&hook);
    if (rc != 0 && rc != -EEXIST) return bpfError("create the clsact qdisc on " + ifname, rc);
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = bpf_program__fd(skel_->progs.oc_ingress), .flags = BPF_TC_F_REPLACE,
                .handle = 1, .priority = 1);
    if (int a = bpf_tc_attach(&hook, &opts); a != 0) return bpfError("attach the dataplane to " + ifname, a);
    return okStatus();
  }

  Status detach(const std::string& ifname) override {
    unsigned ifindex = ::if_nametoindex(ifname.c_str());
    if (ifindex == 0) return okStatus();  // a representor goes away with its pod
    uint32_t key = ifindex;
    (void)bpf_map_delete_elem(bpf_map__fd(skel_->maps.oc_ifaces), &key);
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = 1, .priority = 1);
    int rc = bpf_tc_detach(&hook, &opts);
    if (rc != 0 && rc != -ENOENT) return bpfError("detach the dataplane from " + ifname, rc);
    return okStatus();
  }

  Status upsertEndpoint(const oc_ep_key& key, const oc_ep_val& value) override {
    return update(skel_->maps.oc_endpoints, &key, &value, "endpoint");
  }
  Status removeEndpoint(const oc_ep_key& key) override { return remove(skel_->maps.oc_endpoints, &key, "endpoint"); }
  // oc_nodes by address, and oc_node_macs by uplink MAC (native routing).
  Status upsertNode(uint32_t fabric_ip, const oc_node_val& value) override {
    oc_node_val old{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.oc_nodes), &fabric_ip, &old) == 0 &&
        std::memcmp(old.mac, value.mac, sizeof old.mac) != 0) {
      OC_TRY(removeMac(old, fabric_ip));
    }
    OC_TRY(update(skel_->maps.oc_nodes, &fabric_ip, &value, "node"));
    oc_mac_key mk{};
    std::memcpy(mk.mac, value.mac, sizeof mk.mac);
    if (zeroMac(mk.mac)) return okStatus();
    return update(skel_->maps.oc_node_macs, &mk, &fabric_ip, "node MAC");
  }
  Status removeNode(uint32_t fabric_ip) override {
    oc_node_val old{};
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.oc_nodes), &fabric_ip, &old) == 0) {
      OC_TRY(removeMac(old, fabric_ip));
    }
    return remove(skel_->maps.oc_nodes, &fabric_ip, "node");
  }
  Status upsertNativeNet(const oc_lpm_v4& prefix, const oc_native_val& value) override {
    return update(skel_->maps.oc_native_nets, &prefix, &value, "native net");
  }
  Status removeNativeNet(const oc_lpm_v4& prefix) override {
    return remove(skel_->maps.oc_native_nets, &prefix, "native net");
  }
  Status upsertService(const oc_svc_key& key, const oc_svc_val& value) override {
    return update(skel_->maps.oc_services, &key, &value, "service");
  }
  Status removeService(const oc_svc_key& key) override { return remove(skel_->maps.oc_services, &key, "service"); }
  Status setBackend(uint32_t id, const oc_backend_val& value) override {
    if (id >= OC_MAX_BACKENDS) return makeError("backend id " + std::to_string(id) + " out of range");
    return update(skel_->maps.oc_backends, &id, &value, "backend");
  }

  Status writeRing(uint32_t offset, std::span<const oc_ring_slot> slots) override {
    if (static_cast<uint64_t>(offset) + slots.size() > OC_RING_SLOTS) {
      return makeError("Maglev ring full: " + std::to_string(OC_RING_SLOTS) + " slots for all services");
    }
    std::memcpy(ring_ + offset, slots.data(), slots.size_bytes());
    return okStatus();
  }

  Result<std::vector<std::pair<oc_svc_key, oc_svc_val>>> services() const override {
    return entries<oc_svc_key, oc_svc_val>(skel_->maps.oc_services);
  }

  Result<std::vector<std::pair<oc_ep_key, oc_ep_val>>> endpoints() const override {
    return entries<oc_ep_key, oc_ep_val>(skel_->maps.oc_endpoints);
  }

  Result<std::vector<std::pair<uint32_t, oc_node_val>>> nodes() const override {
    return entries<uint32_t, oc_node_val>(skel_->maps.oc_nodes);
  }
  Result<std::vector<std::pair<oc_lpm_v4, oc_native_val>>> nativeNets() const override {
    return entries<oc_lpm_v4, oc_native_val>(skel_->maps.oc_native_nets);
  }

  Result<std::vector<std::pair<uint32_t, oc_backend_val>>> backends() const override {
    std::vector<std::pair<uint32_t, oc_backend_val>> out;
    int fd = bpf_map__fd(skel_->maps.oc_backends);
    for (uint32_t id = 1; id < OC_MAX_BACKENDS; ++id) {
      oc_backend_val v{};
      if (bpf_map_lookup_elem(fd, &id, &v) == 0 && v.flags != 0) out.emplace_back(id, v);
    }
    return out;
  }

  std::span<const oc_ring_slot> ring() const override { return {ring_, OC_RING_SLOTS}; }

  Result<std::vector<uint64_t>> statPerCpu(uint32_t stat) const override {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return bpfError("count possible CPUs", cpus);
    if (stat >= OC_STATS_MAX) return makeError("no dataplane counter " + std::to_string(stat));
    std::vector<uint64_t> per_cpu(static_cast<size_t>(cpus));
    OC_TRY(checkBpf(bpf_map_lookup_elem(bpf_map__fd(skel_->maps.oc_stats), &stat, per_cpu.data()), "read oc_stats"));
    return per_cpu;
  }
  Result<std::vector<uint64_t>> stats() const override {
    int cpus = libbpf_num_possible_cpus();
    if (cpus <= 0) return bpfError("count possible CPUs", cpus);
    std::vector<uint64_t> sums(OC_STATS_MAX, 0), per_cpu(static_cast<size_t>(cpus));
    int fd = bpf_map__fd(skel_->maps.oc_stats);
    for (uint32_t i = 0; i < OC_STATS_MAX; ++i) {
      if (bpf_map_lookup_elem(fd, &i, per_cpu.data()) != 0) continue;
      for (uint64_t v : per_cpu) sums[i] += v;
    }
    return sums;
  }

  int programFd() const { return bpf_program__fd(skel_->progs.oc_ingress); }

 private:
  static size_t ringBytes() { return sizeof(oc_ring_slot) * OC_RING_SLOTS; }

  // Every (key, value) of a hash or LPM map.
  template <typename K, typename V>
  std::vector<std::pair<K, V>> entries(const bpf_map* map) const {
    std::vector<std::pair<K, V>> out;
    int fd = bpf_map__fd(map);
    K key{}, next{};
    const void* prev = nullptr;
    while (bpf_map_get_next_key(fd, prev, &next) == 0) {
      V v{};
      if (bpf_map_lookup_elem(fd, &next, &v) == 0) out.emplace_back(next, v);
      key = next;
      prev = &key;
    }
    return out;
  }
  // The MAC entry of the node at fabric_ip, unless it belongs to another
  // node by now (a node back with a new address and its old MAC).
  Status removeMac(const oc_node_val& node, uint32_t fabric_ip) {
    oc_mac_key mk{};
    std::memcpy(mk.mac, node.mac, sizeof mk.mac);
    if (zeroMac(mk.mac)) return okStatus();
    uint32_t owner = 0;
    if (bpf_map_lookup_elem(bpf_map__fd(skel_->maps.oc_node_macs), &mk, &owner) != 0 || owner != fabric_ip) {
      return okStatus();
    }
    return remove(skel_->maps.oc_node_macs, &mk, "node MAC");
  }

  Status update(bpf_map* map, const void* key, const void* value, const std::string& what) {
    if (bpf_map_update_elem(bpf_map__fd(map), key, value, BPF_ANY) != 0) {
      return bpfError("update " + what + " in " + bpf_map__name(map), errno);
    }
    return okStatus();
  }
  Status remove(bpf_map* map, const void* key, const std::string& what) {
    if (bpf_map_delete_elem(bpf_map__fd(map), key) != 0 && errno != ENOENT) {
      return bpfError("delete " + what + " from " + bpf_map__name(map), errno);
    }
    return okStatus();
  }

  oc_dataplane* skel_ = nullptr;
  oc_ring_slot* ring_ = nullptr;
};

}  // namespace

int bpfProgramFd(const Dataplane& dp) {
  auto* bpf = dynamic_cast<const BpfDataplane*>(&dp);
  return bpf ? bpf->programFd() : -1;
}

Result<std::unique_ptr<Dataplane>> openBpfDataplane(const std::string& pin_dir) {
  auto dp = std::make_unique<BpfDataplane>();
  OC_TRY(dp->open(pin_dir));
  return std::unique_ptr<Dataplane>(std::move(dp));
}

}  // namespace offcore
