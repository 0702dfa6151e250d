// ServiceProgrammer told only what changed must leave the dataplane as a
// programmer that reprograms everything does: random changes to Services,
// Backends and Endpoints (selectors, labels, pods moving, ports, EIPs, nodes
// dying), each fed as a StateDelta to one programmer and as a whole state
// to a fresh one, and the two dataplanes compared by what they mean.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <tuple>

#include "../net/recording_dataplane.h"
#include "svc/service_programmer.h"

namespace offcore::svc {
namespace {

using offcore::testing::RecordingDataplane;

// What a dataplane does with traffic: endpoints, and per service key its
// flags and the set of backends its ring spreads over.
struct View {
  std::map<std::tuple<uint32_t, uint32_t>, std::tuple<uint32_t, uint32_t, uint16_t>> endpoints;
  std::map<std::tuple<uint32_t, uint32_t, uint32_t>,
           std::pair<uint32_t, std::set<std::tuple<uint32_t, uint32_t, uint16_t>>>>
      services;
  bool operator==(const View&) const = default;
};

View viewOf(const RecordingDataplane& dp) {
  View v;
  for (const auto& [k, e] : dp.endpoint_map) v.endpoints[k] = {e.ifindex, e.node_ip, e.flags};
  auto backends = dp.backends();
  std::map<uint32_t, oc_backend_val> by_id(backends->begin(), backends->end());
  for (const auto& [k, s] : dp.service_map) {
    std::set<std::tuple<uint32_t, uint32_t, uint16_t>> used;
    for (uint32_t i = 0; i < s.ring_size; ++i) {
      const auto& b = by_id[dp.ring()[s.ring_offset + i].backend_id];
      used.insert({b.vpc, b.ip, b.port});
    }
    v.services[k] = {s.flags, used};
  }
  return v;
}

class Cluster {
 public:
  explicit Cluster(uint32_t seed) : rng_(seed) {
    state = ClusterState::empty();
    state.vpcs["v1"] = Vpc{"v1", 7, "tunnel"};
    for (int n = 0; n < 3; ++n) {
      std::string name = "n" + std::to_string(n);
      state.nodes[name] = NodeRecord{name, "10.77.0." + std::to_string(10 + n), "10.78.0." + std::to_string(2 + n),
                                     "02:00:00:00:00:0" + std::to_string(n), "02:00:00:00:01:0" + std::to_string(n)};
    }
  }

  // One random change; returns the keys it touched.
  std::set<std::string> mutate() {
    std::set<std::string> keys;
    switch (pick(7)) {
      case 0: {  // a Service appears, changes or goes
        std::string name = "s" + std::to_string(pick(8));
        if (state.services.count(name) && pick(3) == 0) {
          state.services.erase(name);
        } else {
          Service s;
          s.name = name;
          s.vpc = pick(4) == 0 ? "default" : "v1";
          // Addresses from a small pool, so one a Service gave up is soon another's (in the same delta too).
          s.cluster_ip = freeAddress("10.96.0.", s.vpc, name, [](const Service& o) { return o.cluster_ip; });
          if (s.cluster_ip.empty()) return keys;
          s.ports = {ServicePort{"a", static_cast<uint16_t>(80 + pick(2)), 8080, "TCP", ""}};
          if (pick(2)) s.ports.push_back(ServicePort{"b", 53, 53, "UDP", ""});
          s.selector = {{"app", "a" + std::to_string(pick(4))}};
          if (pick(3) == 0) s.selector["tier"] = "t" + std::to_string(pick(2));
          if (pick(3) == 0) {
            s.type = "LoadBalancer";
            s.eip = freeAddress("203.0.113.", "", name, [](const Service& o) { return o.eip; });
            if (s.eip.empty()) return keys;
          }
          state.services[name] = s;
        }
        keys.insert("services/" + name);
        break;
      }
      case 1:
      case 2: {  // a Backend appears, is relabelled or goes
        std::string name = "b" + std::to_string(pick(16));
        if (state.backends.count(name) && pick(3) == 0) {
          state.backends.erase(name);
        } else {
          Backend b;
          b.name = name;
          b.labels = {{"app", "a" + std::to_string(pick(4))}, {"tier", "t" + std::to_string(pick(2))}};
          b.vpc = "v1";
          if (pick(4) == 0) {
            b.kind = "ip";
            b.ip = "10.1.9." + std::to_string(10 + pick(5));
            b.node = "n" + std::to_string(pick(3));
          } else {
            b.kind = "pod";
            b.pod = "p" + std::to_string(pick(12));
          }
          state.backends[name] = b;
        }
        keys.insert("backends/" + name);
        break;
      }
      case 3: {  // an address moves to another id in one change (a VM's NIC migrating)
        if (state.endpoints.empty()) return keys;
        auto it = std::next(state.endpoints.begin(), pick(static_cast<int>(state.endpoints.size())));
        Endpoint e = it->second;
        std::string to = "n" + std::to_string(1 + pick(2)) + "/m" + std::to_string(pick(50)) + "/eth0";
        if (state.endpoints.count(to)) return keys;
        keys.insert("endpoints/" + e.id);
        state.endpoints.erase(it);
        e.id = to;
        e.node = to.substr(0, 2);
        state.endpoints[to] = e;
        keys.insert("endpoints/" + to);
        break;
      }
      default: {  // a pod's endpoint appears, moves or goes
        int pod = pick(12);
        std::string id =
            "n" + std::to_string(1 + pick(2)) + "/c" + std::to_string(pod) + "-" + std::to_string(pick(2)) + "/eth0";
        if (state.endpoints.count(id) && pick(2) == 0) {
          state.endpoints.erase(id);
        } else {
          Endpoint e;
          e.id = id;
          e.node = id.substr(0, 2);
          e.pod_name = "p" + std::to_string(pod);
          e.vpc = "v1";
          e.ip = "10.1.0." + std::to_string(2 + pick(40));
          // One address per VPC, as IPAM keeps it.
          bool taken = false;
          for (const auto& [other, o] : state.endpoints) taken = taken || (other != id && o.ip == e.ip);
          if (taken) return keys;
          state.endpoints[id] = e;
        }
        keys.insert("endpoints/" + id);
        break;
      }
    }
    return keys;
  }

  int pick(int n) { return static_cast<int>(rng_() % static_cast<uint32_t>(n)); }

  // An address of prefix.10..13 no other Service of the VPC ("" = any) holds ("" when all are taken).
  template <typename Field>
  std::string freeAddress(const std::string& prefix, const std::string& vpc, const std::string& self, Field field) {
    int start = pick(4);
    for (int k = 0; k < 4; ++k) {
      std::string a = prefix + std::to_string(10 + (start + k) % 4);
      bool taken = false;
      for (const auto& [n, o] : state.services)
        taken = taken || (n != self && (vpc.empty() || o.vpc == vpc) && field(o) == a);
      if (!taken) return a;
    }
    return "";
  }

  ClusterState state;

 private:
  std::mt19937 rng_;
};

TEST(ServiceProgrammerDeltaTest, ChangedObjectsProgramAsEverythingDoes) {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    Cluster c(seed);
    RecordingDataplane dp;
    ServiceProgrammer incremental(dp, NodeIdentity{"n0", 0, 0});
    std::set<std::string> live{"n0", "n1", "n2"};
    ASSERT_TRUE(incremental.program(c.state, {}, live, StateDelta()).ok());
    for (int step = 0; step < 150; ++step) {
      StateDelta d = StateDelta::none();
      for (int k = 0; k < 1 + c.pick(3); ++k) {
        auto keys = c.mutate();
        d.objects.insert(keys.begin(), keys.end());
      }
      if (c.pick(25) == 0 && !live.erase("n2")) live.insert("n2");  // a node dies or returns
      ASSERT_TRUE(incremental.program(c.state, {}, live, d).ok()) << "seed " << seed << " step " << step;

      RecordingDataplane fresh_dp;
      ServiceProgrammer fresh(fresh_dp, NodeIdentity{"n0", 0, 0});
      ASSERT_TRUE(fresh.program(c.state, {}, live, StateDelta()).ok());
      ASSERT_EQ(viewOf(dp), viewOf(fresh_dp)) << "seed " << seed << " step " << step;
    }
  }
}

TEST(ServiceProgrammerDeltaTest, AChangeWritesOnlyWhatItReaches) {
  Cluster c(7);
  for (int i = 0; i < 400; ++i) c.mutate();
  RecordingDataplane dp;
  ServiceProgrammer p(dp, NodeIdentity{"n0", 0, 0});
  std::set<std::string> live{"n0", "n1", "n2"};
  ASSERT_TRUE(p.program(c.state, {}, live, StateDelta()).ok());
  // A Service that selects nothing: one table, nothing else.
  Service s;
  s.name = "lonely";
  s.vpc = "v1";
  s.cluster_ip = "10.96.1.1";
  s.ports = {ServicePort{"a", 80, 80, "TCP", ""}};
  s.selector = {{"app", "nobody"}};
  c.state.services[s.name] = s;
  auto stats = p.program(c.state, {}, live, StateDelta::of("services/lonely"));
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->writes, 1u);  // its service entry (no backends, no ring)
  // Nothing changed: nothing written.
  stats = p.program(c.state, {}, live, StateDelta::none());
  ASSERT_TRUE(stats.ok());
  EXPECT_EQ(stats->writes, 0u);
}

}  // namespace
}  // namespace offcore::svc
