// `offcore mesh xds-dump --server HOST:PORT --node-id ID [--wait-version V]
// [--watch] [--json]`: connects the xDS client (src/mesh/xds) to a control
// plane and prints the Snapshot it builds; with --watch, every update as it
// comes (one JSON document per line with --json) and the stream's events
// (connect, ACK, NACK, disconnect) on stderr.
#include "cli/mesh_xds.h"

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <map>
#include <mutex>
#include <optional>

#include "base/json.h"
#include "base/result.h"
#include "cli/common.h"
#include "mesh/xds/snapshot_json.h"
#include "mesh/xds/xds_client.h"

namespace offcore {

namespace {

using namespace offcore::mesh;
using namespace offcore::mesh::xds;

struct XdsDumpOpts {
  std::string server, node_id, wait_version;
  double timeout_s = 30;
  bool json = false, watch = false;
};

void printUpdate(const XdsUpdate& u, bool json) {
  if (json) {
    std::printf("%s\n", dumpJson(updateToJson(u), -1).c_str());
    std::fflush(stdout);
    return;
  }
  std::string versions;
  for (const auto& [t, v] : u.versions) versions += (versions.empty() ? "" : " ") + t + "=" + v;
  std::printf("snapshot %llu (%s)\n", static_cast<unsigned long long>(u.snapshot.version), versions.c_str());
  std::vector<std::vector<std::string>> rows{{"SERVICE", "VIP", "PORTS", "ENDPOINTS"}};
  for (const auto& s : u.snapshot.services) {
    std::string ports, eps;
    for (const auto& p : s.ports)
      ports +=
          (ports.empty() ? "" : " ") + std::to_string(p.port) + "/" + (p.app_protocol.empty() ? "?" : p.app_protocol);
    for (const auto& e : s.endpoints) eps += (eps.empty() ? "" : " ") + e.ip + (e.healthy ? "" : "(unhealthy)");
    rows.push_back({s.name, s.vip.empty() ? "-" : s.vip, ports, eps});
  }
  std::printf("%s", renderTable(rows).c_str());
  for (const auto& vs : u.snapshot.config.virtual_services)
    std::printf("routes %s: %zu http, %zu tcp\n", vs.name.c_str(), vs.http.size(), vs.tcp.size());
  std::fflush(stdout);
}

int runXdsDump(const XdsDumpOpts& o) {
  std::mutex mu;
  std::condition_variable cv;
  std::optional<XdsUpdate> latest;
  bool fresh = false;
  std::map<std::string, std::string> acked;  // type -> last ACKed version
  XdsClientOptions opts;
  opts.server = o.server;
  opts.node_id = o.node_id;
  XdsClient client(
      opts,
      [&](XdsUpdate u) {
        std::lock_guard lock(mu);
        latest = std::move(u);
        fresh = true;
        cv.notify_all();
      },
      [&](const XdsEvent& e) {
        static const char* kinds[] = {"connected to", "disconnected:", "ACK", "NACK"};
        if (o.watch || e.kind == XdsEvent::Kind::kNack)
          std::fprintf(stderr, "xds: %s %s\n", kinds[static_cast<int>(e.kind)], e.detail.c_str());
        if (e.kind != XdsEvent::Kind::kAck) return;
        std::lock_guard lock(mu);
        auto sp = e.detail.find(" version ");
        if (sp != std::string::npos) acked[e.detail.substr(0, sp)] = e.detail.substr(sp + 9);
        cv.notify_all();
      });
  if (auto st = client.start(); !st.ok()) return fail("mesh xds-dump", st.error());
  // Done when a snapshot exists and, with --wait-version, every type the
  // server has sent was ACKed at that version (the update a response makes
  // is delivered before its ACK event).
  auto reached = [&] {
    if (!latest) return false;
    if (o.wait_version.empty()) return true;
    if (!acked.count("lds") || !acked.count("cds")) return false;
    for (const auto& [_, v] : acked)
      if (v != o.wait_version) return false;
    return true;
  };
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
  std::unique_lock lock(mu);
  while (true) {
    bool forever = o.watch && o.timeout_s <= 0;
    bool woke = forever ? (cv.wait(lock), true) : cv.wait_until(lock, deadline) != std::cv_status::timeout;
    if (o.watch) {
      if (fresh && latest) {
        fresh = false;
        printUpdate(*latest, o.json);
      }
      if (!woke) break;
      continue;
    }
    if (reached()) {
      printUpdate(*latest, o.json);
      break;
    }
    if (!woke && std::chrono::steady_clock::now() >= deadline) {
      auto stats = client.stats();
      std::string why = !stats.connected           ? "not connected to " + o.server + " (" + stats.last_error + ")"
                        : !stats.last_nack.empty() ? "last NACK: " + stats.last_nack
                                                   : "waiting for the control plane";
      lock.unlock();
      client.stop();
      return fail("mesh xds-dump",
                  makeError("no " +
                            (o.wait_version.empty() ? std::string("complete snapshot")
                                                    : "snapshot at version " + o.wait_version) +
                            " within " + std::to_string(static_cast<int>(o.timeout_s)) + " s; " + why));
    }
  }
  lock.unlock();
  client.stop();
  return 0;
}

}  // namespace

void addMeshXdsCommands(CLI::App& mesh) {
  auto o = std::make_shared<XdsDumpOpts>();
  auto* cmd = mesh.add_subcommand("xds-dump", "connect to an xDS (ADS v3) server and print the snapshot it gives");
  cmd->add_option("--server", o->server, "the control plane, HOST:PORT (plaintext gRPC)")->required();
  cmd->add_option("--node-id", o->node_id, "the node id to present")->required();
  cmd->add_option("--wait-version", o->wait_version, "wait until every type is ACKed at this version_info");
  cmd->add_option("--timeout", o->timeout_s, "give up after this many seconds (with --watch: stop; 0 = never)");
  cmd->add_flag("--watch", o->watch, "print every update until --timeout");
  cmd->add_flag("--json", o->json, "JSON output (one document per line with --watch)");
  cmd->callback([o] {
    int rc = runXdsDump(*o);
    if (rc != 0) throw CLI::RuntimeError(rc);
  });
}

}  // namespace offcore
