// `offcore vm migrate NAME --to NODE`: live migration driven from the SoCs.
// The destination's back end starts first on the same disk, then a QEMU
// waiting for the stream; the source QEMU sends its memory, re-sending the
// pages the dirty log (its own, and the vhost-user back end's LOG_ALL) marks,
// stops the back end's rings after the final sync, and the destination
// resumes. The stream goes over a unix socket in the destination's run
// directory: both host domains share this machine's filesystem, whichever
// network namespace they have.
#include <chrono>
#include <cstdio>
#include <thread>

#include "api/api_client.h"
#include "base/files.h"
#include "cli/common.h"
#include "cli/vm_common.h"
#include "dpu/node.h"
#include "virt/qmp/qmp_client.h"

namespace offcore {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

struct MigrateOpts {
  std::string name, to;
  int timeout_s = 300;
  bool json = false;
};

int migrateVm(const CliContext& ctx, const MigrateOpts& o) {
  auto spec = loadVm(ctx, o.name);
  if (!spec.ok()) return fail("vm migrate", spec.error());
  if (spec->node == o.to) return fail("vm migrate", makeError("VM " + o.name + " already runs on node " + o.to));
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("vm migrate", nodes.error());
  if (auto st = nodes->state(o.to); !st.ok()) return fail("vm migrate", st.error());
  ApiClient src(nodes->layout(spec->node).api_socket, 15000);
  ApiClient dst(nodes->layout(o.to).api_socket, 15000);
  if (vmServiceState(src, qemuService(o.name)) != "running") {
    return fail("vm migrate", makeError("VM " + o.name + " is not running (`offcore vm start " + o.name + "`)"));
  }
  auto src_paths = vmPathsFor(ctx, *spec);
  virt::VmSpec dest = *spec;
  dest.node = o.to;
  auto dst_paths = vmPathsFor(ctx, dest);
  auto undo = [&](const Error& e) {
    (void)dst.del("/v1/services/" + qemuService(o.name));
    (void)dst.del("/v1/services/" + blkService(o.name));
    (void)removeTree(dst_paths.dir);
    return fail("vm migrate", e);
  };
  auto started = Clock::now();

  // 1. The destination: back end on the same disk, QEMU waiting for the stream.
  if (auto b = startVmBackend(ctx, dst, dest, dst_paths); !b.ok()) return undo(b.error());
  if (auto q = startVmQemu(dst, o.name, {"--node", o.to, "--incoming"}); !q.ok()) return undo(q.error());
  auto dq = virt::QmpClient::connect(dst_paths.qmp_socket, std::chrono::seconds(20));
  if (!dq.ok()) return undo(dq.error().wrap("the destination QEMU did not come up"));
  std::string uri = "unix:" + dst_paths.dir + "/migrate.sock";
  if (auto r = (*dq)->execute("migrate-incoming", json{{"uri", uri}}); !r.ok()) return undo(r.error());

  // 2. The source sends.
  auto sq = virt::QmpClient::connect(src_paths.qmp_socket, std::chrono::seconds(5));
  if (!sq.ok()) return undo(sq.error().wrap("the source QEMU"));
  if (auto r = (*sq)->execute("migrate", json{{"uri", uri}}); !r.ok()) return undo(r.error());
  json info;
  auto deadline = Clock::now() + std::chrono::seconds(o.timeout_s);
  while (true) {
    auto q = (*sq)->execute("query-migrate");
    if (!q.ok()) return undo(q.error());
    info = *q;
    std::string status = info.value("status", "");
    if (status == "completed") break;
    if (status == "failed" || status == "cancelled") {
      return undo(makeError("the migration " + status + ": " +
                            info.value("error-desc", std::string("no reason given")) + "; the VM keeps running on " +
                            spec->node));
    }
    if (Clock::now() > deadline) {
      (void)(*sq)->execute("migrate_cancel");
      return undo(makeError("the migration did not converge in " + std::to_string(o.timeout_s) +
                            " s (the guest dirties memory faster than it is sent); the VM keeps running on " +
                            spec->node));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  // 3. The destination runs; the source is paused for good: end it.
  std::string dstate;
  for (int i = 0; i < 100; ++i) {
    auto st = (*dq)->execute("query-status");
    dstate = st.ok() ? st->value("status", "") : "";
    if (dstate == "running") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (dstate != "running") {
    return fail("vm migrate", makeError("the destination QEMU is " + dstate +
                                        " after the migration; the source is "
                                        "paused on " +
                                        spec->node + " (`offcore vm list`)"));
  }
  if (auto s = saveVm(ctx, dest); !s.ok()) return fail("vm migrate", s.error());
  (void)(*sq)->execute("quit");
  (void)waitVmServiceEnded(src, qemuService(o.name), std::chrono::seconds(10));
  (void)src.del("/v1/services/" + qemuService(o.name));
  (void)src.del("/v1/services/" + blkService(o.name));
  // The source's sockets go; its console log stays, the guest's history up
  // to the switch (the destination's log goes on from there).
  for (const auto* f : {&src_paths.blk_socket, &src_paths.qmp_socket, &src_paths.console_socket}) {
    std::remove(f->c_str());
  }
  auto total_ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - started).count();

  json out{{"name", o.name},
           {"from", spec->node},
           {"to", o.to},
           {"downtime_ms", info.value("downtime", -1)},
           {"qemu_total_ms", info.value("total-time", -1)},
           {"total_ms", total_ms},
           {"ram_transferred_bytes", info.contains("ram") ? info["ram"].value("transferred", 0) : 0}};
  if (o.json) {
    std::printf("%s\n", out.dump().c_str());
  } else {
    std::printf("migrated VM %s from %s to %s: downtime %lld ms, memory copy %lld ms, total %lld ms\n", o.name.c_str(),
                spec->node.c_str(), o.to.c_str(), static_cast<long long>(out["downtime_ms"]),
                static_cast<long long>(out["qemu_total_ms"]), static_cast<long long>(total_ms));
  }
  return 0;
}

}  // namespace

void registerVmMigrate(CLI::App& vm, CliContext& ctx) {
  auto o = std::make_shared<MigrateOpts>();
  auto* m = vm.add_subcommand("migrate", "live-migrate a running VM to another node (its disk stays where it is)");
  m->add_option("name", o->name, "VM name")->required();
  m->add_option("--to", o->to, "destination node")->required();
  m->add_option("--timeout", o->timeout_s, "seconds the memory copy may take before it is cancelled")
      ->capture_default_str();
  m->add_flag("--json", o->json, "print the figures as JSON");
  m->callback([&ctx, o] { ctx.action = [&ctx, o] { return migrateVm(ctx, *o); }; });
}

}  // namespace offcore
