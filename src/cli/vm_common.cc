#include "cli/vm_common.h"

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "base/json.h"
#include "base/log.h"
#include "base/subprocess.h"
#include "cli/cluster_records.h"
#include "dpu/node.h"
#include "virt/vhost/server.h"

namespace offcore {

using nlohmann::json;

namespace {

Result<std::shared_ptr<volumes::RecordStore>> vmRecords(const CliContext& ctx) {
  return clusterRecords(ctx, volumes::kVmRecords);
}

std::string recordText(const virt::VmSpec& spec) { return virt::vmSpecToJson(spec).dump(2) + "\n"; }

}  // namespace

Status saveNewVm(const CliContext& ctx, const virt::VmSpec& spec) {
  OC_TRY(virt::validateVmSpec(spec));
  OC_ASSIGN_OR_RETURN(auto store, vmRecords(ctx));
  auto made = store->create(spec.name, recordText(spec));
  if (!made.ok() && made.error().code == EEXIST) {
    return makeError("VM " + spec.name + " exists (`offcore vm delete " + spec.name + "` first)", EEXIST);
  }
  return made;
}

Status saveVm(const CliContext& ctx, const virt::VmSpec& spec) {
  OC_TRY(virt::validateVmSpec(spec));
  OC_ASSIGN_OR_RETURN(auto store, vmRecords(ctx));
  return store->put(spec.name, recordText(spec));
}

Result<virt::VmSpec> loadVm(const CliContext& ctx, const std::string& name) {
  OC_ASSIGN_OR_RETURN(auto store, vmRecords(ctx));
  auto text = store->get(name);
  if (!text.ok()) return text.error().wrap("VM " + name);
  if (!*text) return makeError("no VM named '" + name + "' (see `offcore vm list`)", ENOENT);
  const std::string where = "VM " + name + " in " + store->location();
  auto doc = nlohmann::json::parse(**text, nullptr, false);
  auto spec = virt::vmSpecFromJson(doc);
  if (!spec.ok()) return spec.error().wrap(where);
  if (spec->name != name) return makeError(where + ": records VM '" + spec->name + "'");
  return spec;
}

Result<std::vector<std::string>> listVmNames(const CliContext& ctx) {
  OC_ASSIGN_OR_RETURN(auto store, vmRecords(ctx));
  return store->names();
}

Status removeVmRecord(const CliContext& ctx, const std::string& name) {
  OC_ASSIGN_OR_RETURN(auto store, vmRecords(ctx));
  return store->remove(name);
}

virt::VmPaths vmPathsFor(const CliContext& ctx, const virt::VmSpec& spec) {
  return virt::vmPaths(ctx.config.run_root, spec.node, spec.name);
}

std::vector<std::string> blkServeArgv(const virt::VmSpec& spec, const virt::VmPaths& paths) {
  int queues = spec.disk_queues > 0 ? spec.disk_queues : spec.cpus;
  std::vector<std::string> argv{selfExe(), "vm", "blk-serve", "--socket", paths.blk_socket};
  if (spec.disk.rfind("nvme-tcp://", 0) == 0) {
    argv.insert(argv.end(), {"--volume", spec.disk, "--node", spec.node});
    if (!spec.disk_secret_file.empty()) argv.insert(argv.end(), {"--secret-file", spec.disk_secret_file});
  } else {
    argv.insert(argv.end(), {"--file", spec.disk});
  }
  // virtio-blk's GET_ID carries at most 20 bytes; VM names go up to 32.
  argv.insert(argv.end(), {"--queues", std::to_string(queues), "--serial", spec.name.substr(0, 20)});
  return argv;
}

// Waits until the agent reports the service gone or exited.
bool waitVmServiceEnded(ApiClient& agent, const std::string& service, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    auto r = agent.get("/v1/services/" + service);
    if (!r.ok()) return false;
    if (r->status == 404) return true;
    auto j = json::parse(r->body, nullptr, false);
    if (!j.is_discarded() && (j.value("state", "") == "exited" || j.value("state", "") == "failed")) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return false;
}

std::string vmServiceState(ApiClient& agent, const std::string& service) {
  auto r = agent.get("/v1/services/" + service);
  if (!r.ok()) return "unknown (agent unreachable)";
  if (r->status == 404) return "stopped";
  auto j = json::parse(r->body, nullptr, false);
  return j.is_discarded() ? "unknown" : j.value("state", "unknown");
}

Status startVmBackend(const CliContext& ctx, ApiClient& agent, const virt::VmSpec& spec, const virt::VmPaths& paths) {
  OC_TRY(makePrivateDir(paths.dir));
  std::remove(paths.blk_socket.c_str());
  (void)agent.del("/v1/services/" + blkService(spec.name));
  nlohmann::json blk{{"name", blkService(spec.name)}, {"argv", blkServeArgv(spec, paths)}};
  OC_TRY(agent.call("POST", "/v1/services", dumpJson(blk)));
  for (int i = 0; i < 200 && !unixSocketAnswers(paths.blk_socket); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(25));
  }
  if (unixSocketAnswers(paths.blk_socket)) return okStatus();
  (void)agent.del("/v1/services/" + blkService(spec.name));
  return makeError("the disk back end did not come up (see " + ctx.config.run_root + "/" + spec.node + "/" +
                   blkService(spec.name) + ".log)");
}

Status startVmQemu(ApiClient& agent, const std::string& name, const std::vector<std::string>& extra) {
  (void)agent.del("/v1/services/" + qemuService(name));
  std::vector<std::string> argv{selfExe(), "vm", "qemu-exec", name};
  argv.insert(argv.end(), extra.begin(), extra.end());
  // restart=false: a guest that powers off ends the service; a crash is retried.
  nlohmann::json qemu{{"name", qemuService(name)}, {"argv", argv}, {"restart", false}};
  OC_TRY(agent.call("POST", "/v1/services", dumpJson(qemu)));
  return okStatus();
}

Status enterVmHostDomain(NodeManager& nodes, const NodeState& node) { return nodes.enterDomain(node, Domain::kHost); }

Status serveUntilSignal(virt::VhostUserServer& server, const sigset_t& mask, const std::string& what) {
  Status ran;
  std::thread serving([&] { ran = server.run(); });
  std::atomic<bool> done{false};
  std::thread watcher([&] {
    serving.join();
    done = true;
    ::kill(::getpid(), SIGTERM);  // wakes sigwait below
  });
  int sig = 0;
  while (::sigwait(&mask, &sig) != 0) {}
  if (!done) spdlog::info("{}: signal {}, stopping", what, sig);
  server.stop();  // ends the connection: queues finish what they hold, then stop
  watcher.join();
  return ran;
}

}  // namespace offcore
