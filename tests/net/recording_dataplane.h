// A Dataplane that keeps its maps in memory and records every call in
// order, for control-plane tests that need neither root nor BPF: ordering
// rules (docs/CONCURRENCY.md), write counts, what a reconcile changed.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <span>
#include <string>
#include <tuple>
#include <vector>

#include "net/dataplane.h"

namespace offcore::testing {

class RecordingDataplane final : public Dataplane {
 public:
  enum class Op {
    kConfig,
    kAttach,
    kDetach,
    kEndpoint,
    kRemoveEndpoint,
    kNode,
    kRemoveNode,
    kNativeNet,
    kRemoveNativeNet,
    kService,
    kRemoveService,
    kBackend,
    kRing
  };
  struct Call {
    Op op;
    uint32_t a = 0, b = 0;  // kService: id, ring_offset; kRing: offset, count; kBackend: id; kNode: ip
    oc_svc_val svc{};
  };

  Status setConfig(const oc_config&) override { return note({Op::kConfig}); }
  Status attach(const std::string&, const oc_iface_val&) override { return note({Op::kAttach}); }
  Status detach(const std::string&) override { return note({Op::kDetach}); }
  Status upsertEndpoint(const oc_ep_key& k, const oc_ep_val& v) override {
    endpoint_map[{k.vpc, k.ip}] = v;
    return note({Op::kEndpoint, k.vpc, k.ip});
  }
  Status removeEndpoint(const oc_ep_key& k) override {
    endpoint_map.erase({k.vpc, k.ip});
    return note({Op::kRemoveEndpoint, k.vpc, k.ip});
  }
  Status upsertNode(uint32_t ip, const oc_node_val& v) override {
    node_map[ip] = v;
    return note({Op::kNode, ip});
  }
  Status removeNode(uint32_t ip) override {
    node_map.erase(ip);
    return note({Op::kRemoveNode, ip});
  }
  Status upsertNativeNet(const oc_lpm_v4& p, const oc_native_val& v) override {
    native_map[{p.addr, p.prefixlen}] = v.vpc;
    return note({Op::kNativeNet, p.addr, p.prefixlen});
  }
  Status removeNativeNet(const oc_lpm_v4& p) override {
    native_map.erase({p.addr, p.prefixlen});
    return note({Op::kRemoveNativeNet, p.addr, p.prefixlen});
  }
  Status upsertService(const oc_svc_key& k, const oc_svc_val& v) override {
    service_map[{k.vpc, k.vip, (uint32_t{k.port} << 8) | k.proto}] = v;
    return note({Op::kService, v.id, v.ring_offset, v});
  }
  Status removeService(const oc_svc_key& k) override {
    service_map.erase({k.vpc, k.vip, (uint32_t{k.port} << 8) | k.proto});
    return note({Op::kRemoveService});
  }
  Status setBackend(uint32_t id, const oc_backend_val& v) override {
    backends_[id] = v;
    return note({Op::kBackend, id});
  }
  Status writeRing(uint32_t offset, std::span<const oc_ring_slot> slots) override {
    if (ring_.size() < offset + slots.size()) ring_.resize(offset + slots.size());
    std::copy(slots.begin(), slots.end(), ring_.begin() + offset);
    return note({Op::kRing, offset, static_cast<uint32_t>(slots.size())});
  }
  Result<std::vector<std::pair<oc_svc_key, oc_svc_val>>> services() const override {
    std::vector<std::pair<oc_svc_key, oc_svc_val>> out;
    for (const auto& [k, v] : service_map) {
      oc_svc_key key{};
      key.vpc = std::get<0>(k);
      key.vip = std::get<1>(k);
      key.port = static_cast<uint16_t>(std::get<2>(k) >> 8);
      key.proto = static_cast<uint8_t>(std::get<2>(k) & 0xFF);
      out.push_back({key, v});
    }
    return out;
  }
  Result<std::vector<std::pair<oc_ep_key, oc_ep_val>>> endpoints() const override {
    std::vector<std::pair<oc_ep_key, oc_ep_val>> out;
    for (const auto& [k, v] : endpoint_map) out.push_back({oc_ep_key{std::get<0>(k), std::get<1>(k)}, v});
    return out;
  }
  Result<std::vector<std::pair<uint32_t, oc_node_val>>> nodes() const override {
    return std::vector<std::pair<uint32_t, oc_node_val>>(node_map.begin(), node_map.end());
  }
  Result<std::vector<std::pair<oc_lpm_v4, oc_native_val>>> nativeNets() const override {
    std::vector<std::pair<oc_lpm_v4, oc_native_val>> out;
    for (const auto& [k, vpc] : native_map) out.push_back({oc_lpm_v4{k.second, k.first}, oc_native_val{vpc, 0}});
    return out;
  }
  Result<std::vector<std::pair<uint32_t, oc_backend_val>>> backends() const override {
    return std::vector<std::pair<uint32_t, oc_backend_val>>(backends_.begin(), backends_.end());
  }
  std::span<const oc_ring_slot> ring() const override { return ring_; }
  Result<std::vector<uint64_t>> stats() const override { return std::vector<uint64_t>(OC_STATS_MAX, 0); }
  Result<std::vector<uint64_t>> statPerCpu(uint32_t) const override { return std::vector<uint64_t>(1, 0); }

  std::vector<Call> calls;
  std::map<std::tuple<uint32_t, uint32_t>, oc_ep_val> endpoint_map;
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>, oc_svc_val> service_map;  // (vpc, vip, port << 8 | proto)
  std::map<uint32_t, oc_node_val> node_map;
  std::map<std::pair<uint32_t, uint32_t>, uint32_t> native_map;  // (addr, prefixlen) -> vpc

 private:
  Status note(Call c) {
    calls.push_back(c);
    return okStatus();
  }
  std::map<uint32_t, oc_backend_val> backends_;
  std::vector<oc_ring_slot> ring_;
};

}  // namespace offcore::testing
