// `offcore vm create|start|stop|list|console|delete`: VM lifecycle from the
// SoC. The record lives in the cluster store (<cluster_dir>/vms/NAME.json,
// 0600, or a key in etcd: vm_common.h); a running VM is two services of its node's agent: the vhost-user-blk
// back end in the SoC domain, and QEMU, which `vm qemu-exec` moves into the
// host domain before exec, so the host runs only the vCPUs. A VM with --net
// has a third, the vhost-user-net back end on its NIC's tap (vm_net.cc).
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <thread>

#include "api/api_client.h"
#include "base/byte_size.h"
#include "base/files.h"
#include "base/json.h"
#include "base/subprocess.h"
#include "cli/common.h"
#include "cli/vm_common.h"
#include "dpu/node.h"
#include "virt/qmp/qmp_client.h"

namespace offcore {

using nlohmann::json;
using virt::VmSpec;

namespace {

int startVm(const CliContext& ctx, const std::string& name) {
  auto spec = loadVm(ctx, name);
  if (!spec.ok()) return fail("vm start", spec.error());
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("vm start", nodes.error());
  if (auto st = nodes->state(spec->node); !st.ok()) return fail("vm start", st.error());
  ApiClient agent(nodes->layout(spec->node).api_socket, 10000);
  if (vmServiceState(agent, qemuService(name)) == "running") {
    return fail("vm start", makeError("VM " + name + " is already running (`offcore vm stop " + name + "` first)"));
  }
  auto paths = vmPathsFor(ctx, *spec);
  if (auto s = makePrivateDir(paths.dir); !s.ok()) return fail("vm start", s.error());
  std::remove(paths.blk_socket.c_str());
  (void)agent.del("/v1/services/" + blkService(name));
  (void)agent.del("/v1/services/" + qemuService(name));

  if (auto b = startVmBackend(ctx, agent, *spec, paths); !b.ok()) return fail("vm start", b.error());
  if (!spec->net.empty()) {
    // The NIC keeps its address across stops; the record carries it to QEMU.
    auto undo = [&](const Error& e) {
      (void)agent.del("/v1/services/" + netService(name));
      (void)agent.del("/v1/services/" + blkService(name));
      return fail("vm start", e);
    };
    (void)agent.del("/v1/services/" + netService(name));
    std::string had_ip = spec->net_ip, had_mac = spec->net_mac;
    auto tap = attachVmNic(agent, *spec, NicPhase::kAttach);
    if (!tap.ok()) return undo(tap.error().wrap("the VM's NIC in " + spec->net));
    if (spec->net_ip != had_ip || spec->net_mac != had_mac) {
      if (auto s = saveVm(ctx, *spec); !s.ok()) return undo(s.error());
    }
    if (auto n = startVmNetBackend(ctx, agent, *spec, paths, *tap); !n.ok()) return undo(n.error());
  }
  if (auto q = startVmQemu(agent, name, {}); !q.ok()) return fail("vm start", q.error());
  auto qmp = virt::QmpClient::connect(paths.qmp_socket, std::chrono::seconds(20));
  if (!qmp.ok()) {
    return fail("vm start", qmp.error().wrap("QEMU did not come up (see " + ctx.config.run_root + "/" + spec->node +
                                             "/" + qemuService(name) + ".log)"));
  }
  std::printf("started VM %s on node %s (console: offcore vm console %s)\n", name.c_str(), spec->node.c_str(),
              name.c_str());
  return 0;
}

int stopVm(const CliContext& ctx, const std::string& name, int timeout_s) {
  auto spec = loadVm(ctx, name);
  if (!spec.ok()) return fail("vm stop", spec.error());
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("vm stop", nodes.error());
  ApiClient agent(nodes->layout(spec->node).api_socket, 15000);
  auto paths = vmPathsFor(ctx, *spec);
  bool ended = vmServiceState(agent, qemuService(name)) != "running";
  if (!ended) {
    // ACPI first, as a guest with acpid expects; then QEMU's own quit.
    if (auto qmp = virt::QmpClient::connect(paths.qmp_socket, std::chrono::seconds(2)); qmp.ok()) {
      (void)(*qmp)->execute("system_powerdown");
      ended = waitVmServiceEnded(agent, qemuService(name), std::chrono::seconds(timeout_s));
      if (!ended) {
        std::fprintf(stderr, "VM %s ignored the ACPI power-down for %d s; stopping QEMU\n", name.c_str(), timeout_s);
        (void)(*qmp)->execute("quit");
        ended = waitVmServiceEnded(agent, qemuService(name), std::chrono::seconds(5));
      }
    }
  }
  // The service delete SIGTERMs (then SIGKILLs) whatever is left; QEMU first,
  // so the back end never goes away under a running guest.
  if (auto r = agent.del("/v1/services/" + qemuService(name)); !r.ok()) return fail("vm stop", r.error());
  if (auto r = agent.del("/v1/services/" + blkService(name)); !r.ok()) return fail("vm stop", r.error());
  // The NIC (address, tap) stays until `vm delete`: a restarted VM keeps its address.
  if (auto r = agent.del("/v1/services/" + netService(name)); !r.ok()) return fail("vm stop", r.error());
  std::printf("stopped VM %s%s\n", name.c_str(), ended ? "" : " (forced)");
  return 0;
}

int listVms(const CliContext& ctx, bool as_json) {
  auto names = listVmNames(ctx);
  if (!names.ok()) return fail("vm list", names.error());
  auto nodes = NodeManager::create(ctx.config);
  if (!nodes.ok()) return fail("vm list", nodes.error());
  json out = json::array();
  std::vector<std::vector<std::string>> rows{{"NAME", "NODE", "STATE", "CPUS", "MEM", "DISK", "IP"}};
  for (const auto& n : *names) {
    auto spec = loadVm(ctx, n);
    if (!spec.ok()) {
      rows.push_back({n, "?", "bad record: " + spec.error().message, "", "", "", ""});
      continue;
    }
    std::string state = "stopped";
    if (auto st = nodes->state(spec->node); st.ok()) {
      ApiClient agent(nodes->layout(spec->node).api_socket, 3000);
      state = vmServiceState(agent, qemuService(n));
      if (state == "exited" || state == "failed") state = "stopped (" + state + ")";
      if (state == "running") {
        auto paths = vmPathsFor(ctx, *spec);
        if (auto qmp = virt::QmpClient::connect(paths.qmp_socket, std::chrono::seconds(2)); qmp.ok()) {
          if (auto s = (*qmp)->execute("query-status"); s.ok()) state = s->value("status", state);
        }
      }
    } else {
      state = "node down";
    }
    json j = virt::vmSpecToJson(*spec);
    j["state"] = state;
    out.push_back(j);
    std::string ip = spec->net.empty() ? "-" : (spec->net_ip.empty() ? spec->net + " (not started)" : spec->net_ip);
    rows.push_back({n, spec->node, state, std::to_string(spec->cpus), humanBytes(spec->mem_bytes), spec->disk, ip});
  }
  if (as_json)
    std::printf("%s\n", out.dump(2).c_str());
  else
    std::printf("%s", renderTable(rows).c_str());
  return 0;
}

// Bridges the terminal and the VM's serial console until Ctrl-] (0x1d).
int attachConsole(const CliContext& ctx, const std::string& name) {
  auto spec = loadVm(ctx, name);
  if (!spec.ok()) return fail("vm console", spec.error());
  auto paths = vmPathsFor(ctx, *spec);
  sockaddr_un addr{};
  if (paths.console_socket.size() >= sizeof(addr.sun_path)) return fail("vm console", makeError("path too long"));
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, paths.console_socket.c_str(), paths.console_socket.size() + 1);
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    return fail("vm console", errnoError("connect to " + paths.console_socket + " (is VM " + name +
                                         " running? only one console client at a time)"));
  }
  termios saved{};
  bool tty = ::isatty(0) && ::tcgetattr(0, &saved) == 0;
  if (tty) {
    termios raw = saved;
    ::cfmakeraw(&raw);
    ::tcsetattr(0, TCSANOW, &raw);
    std::fprintf(stderr, "console of VM %s; Ctrl-] leaves\r\n", name.c_str());
  }
  char buf[4096];
  bool done = false;
  while (!done) {
    pollfd p[2] = {{0, POLLIN, 0}, {fd, POLLIN, 0}};
    if (::poll(p, 2, -1) < 0) break;
    if (p[0].revents & (POLLIN | POLLHUP)) {
      ssize_t n = ::read(0, buf, sizeof(buf));
      if (n <= 0) break;
      if (tty && std::memchr(buf, 0x1d, static_cast<size_t>(n)) != nullptr) break;
      if (::send(fd, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) break;
    }
    if (p[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0)
        done = true;
      else if (::write(1, buf, static_cast<size_t>(n)) != n)
        break;
    }
  }
  if (tty) ::tcsetattr(0, TCSANOW, &saved);
  ::close(fd);
  return 0;
}

}  // namespace

void registerVmLifecycle(CLI::App& vm, CliContext& ctx) {
  auto c = std::make_shared<VmSpec>();
  auto mem = std::make_shared<std::string>("256M");
  auto* create = vm.add_subcommand("create", "record a VM: its node, size, disk and boot");
  create->add_option("name", c->name, "VM name, [a-z0-9-]")->required();
  create->add_option("--node", c->node, "the node whose SoC owns the VM")->required();
  create->add_option("--cpus", c->cpus, "vCPUs")->capture_default_str();
  create->add_option("--mem", *mem, "memory (256M, 1G)")->capture_default_str();
  create->add_option("--disk", c->disk, "nvme-tcp://ADDR:PORT/NQN (an offcore volume) or a file path")->required();
  create->add_option("--disk-queues", c->disk_queues, "virtqueues of the disk (default: one per vCPU)");
  create
      ->add_option("--disk-ring", c->disk_ring,
                   "virtqueue layout of the disk: split or packed (VIRTIO_F_RING_PACKED); in-flight requests are "
                   "tracked across a back-end restart with either. The NIC stays split (vhost-user-net offers no "
                   "packed ring yet)")
      ->check(CLI::IsMember({"split", "packed"}))
      ->capture_default_str();
  create->add_option("--disk-secret-file", c->disk_secret_file,
                     "0600 file with dhchap_secret=... for a volume that demands DH-HMAC-CHAP (the same secret must "
                     "be allowed for every node the VM may run on)");
  create->add_option("--net", c->net,
                     "VPC/SUBNET: a vhost-user-net NIC with an address in that subnet (kept until `vm delete`)");
  create->add_option("--kernel", c->kernel, "kernel for direct boot (else the disk boots)");
  create->add_option("--initrd", c->initrd, "initramfs for --kernel");
  create->add_option("--append", c->append, "kernel command line (default console=ttyS0)");
  create->callback([&ctx, c, mem] {
    ctx.action = [&ctx, c, mem] {
      auto bytes = parseByteSize(*mem);
      if (!bytes.ok()) return fail("vm create", bytes.error());
      VmSpec spec = *c;
      spec.mem_bytes = *bytes;
      for (auto* p : {&spec.disk, &spec.kernel, &spec.initrd, &spec.disk_secret_file}) {
        if (!p->empty() && p->rfind("nvme-tcp://", 0) != 0) *p = std::filesystem::absolute(*p).string();
      }
      if (auto s = saveNewVm(ctx, spec); !s.ok()) return fail("vm create", s.error());
      std::printf("created VM %s on node %s (start it: offcore vm start %s)\n", spec.name.c_str(), spec.node.c_str(),
                  spec.name.c_str());
      return 0;
    };
  });

  auto name = std::make_shared<std::string>();
  auto* start = vm.add_subcommand("start", "start the VM's back ends in the SoC and QEMU in the host domain");
  start->add_option("name", *name, "VM name")->required();
  start->callback([&ctx, name] { ctx.action = [&ctx, name] { return startVm(ctx, *name); }; });

  auto timeout = std::make_shared<int>(30);
  auto* stop = vm.add_subcommand("stop", "ACPI power-down, then QEMU quit after --timeout");
  stop->add_option("name", *name, "VM name")->required();
  stop->add_option("--timeout", *timeout, "seconds the guest gets to power off")->capture_default_str();
  stop->callback(
      [&ctx, name, timeout] { ctx.action = [&ctx, name, timeout] { return stopVm(ctx, *name, *timeout); }; });

  auto as_json = std::make_shared<bool>(false);
  auto* list = vm.add_subcommand("list", "VMs and their state");
  list->add_flag("--json", *as_json, "JSON output");
  list->callback([&ctx, as_json] { ctx.action = [&ctx, as_json] { return listVms(ctx, *as_json); }; });

  auto* console = vm.add_subcommand("console", "attach to the VM's serial console (Ctrl-] leaves)");
  console->add_option("name", *name, "VM name")->required();
  console->callback([&ctx, name] { ctx.action = [&ctx, name] { return attachConsole(ctx, *name); }; });

  auto force = std::make_shared<bool>(false);
  auto* del = vm.add_subcommand("delete", "forget a stopped VM (its disk stays)");
  del->add_option("name", *name, "VM name")->required();
  del->add_flag("--force", *force, "stop it first if it runs");
  del->callback([&ctx, name, force] {
    ctx.action = [&ctx, name, force] {
      auto spec = loadVm(ctx, *name);
      if (!spec.ok()) return fail("vm delete", spec.error());
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("vm delete", nodes.error());
      if (nodes->state(spec->node).ok()) {
        ApiClient agent(nodes->layout(spec->node).api_socket, 5000);
        if (vmServiceState(agent, qemuService(*name)) == "running") {
          if (!*force)
            return fail("vm delete", makeError("VM " + *name + " runs; `offcore vm stop " + *name + "` first"));
          if (int rc = stopVm(ctx, *name, 5); rc != 0) return rc;
        }
        (void)agent.del("/v1/services/" + blkService(*name));
        (void)agent.del("/v1/services/" + qemuService(*name));
        (void)agent.del("/v1/services/" + netService(*name));
        if (!spec->net.empty()) {
          if (auto s = releaseVmNic(agent, *spec, false); !s.ok())
            return fail("vm delete", s.error().wrap("releasing the NIC (retry `offcore vm delete " + *name + "`)"));
        }
      }
      (void)removeTree(vmPathsFor(ctx, *spec).dir);
      if (auto s = removeVmRecord(ctx, *name); !s.ok()) return fail("vm delete", s.error());
      std::printf("deleted VM %s\n", name->c_str());
      return 0;
    };
  });

  struct QemuExecOpts {
    std::string name, node;
    bool incoming = false;
  };
  auto q = std::make_shared<QemuExecOpts>();
  auto* qexec = vm.add_subcommand("qemu-exec", "(internal) enter the host domain and exec the VM's QEMU");
  qexec->group("");
  qexec->add_option("name", q->name, "VM name")->required();
  qexec->add_option("--node", q->node, "run on this node instead of the recorded one (a migration's destination)");
  qexec->add_flag("--incoming", q->incoming, "wait for a migration stream (QMP migrate-incoming)");
  qexec->callback([&ctx, q] {
    ctx.action = [&ctx, q] {
      auto spec = loadVm(ctx, q->name);
      if (!spec.ok()) return fail("vm qemu-exec", spec.error());
      if (!q->node.empty()) spec->node = q->node;
      auto nodes = NodeManager::create(ctx.config);
      if (!nodes.ok()) return fail("vm qemu-exec", nodes.error());
      auto st = nodes->state(spec->node);
      if (!st.ok()) return fail("vm qemu-exec", st.error());
      if (auto s = enterVmHostDomain(*nodes, *st); !s.ok()) return fail("vm qemu-exec", s.error());
      virt::QemuLaunch launch;
      launch.incoming = q->incoming;
      auto argv = virt::qemuArgv(*spec, vmPathsFor(ctx, *spec), launch);
      Error e = execInPlace(argv, SpawnOptions{});
      return fail("vm qemu-exec", e.wrap("is qemu-system-x86 installed? (scripts/setup.sh installs it)"));
    };
  });
}

}  // namespace offcore
