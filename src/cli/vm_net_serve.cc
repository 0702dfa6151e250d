// `offcore vm net-serve`: a vhost-user-net back end. QEMU on the host keeps
// the vCPUs and connects its virtio-net-pci device (netdev vhost-user) to the
// socket; frames move here between the guest's virtqueues and a tap device in
// this process's netns (the VM's representor there).
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <memory>
#include <thread>

#include "base/log.h"
#include "cli/common.h"
#include "cli/vm_common.h"
#include "virt/net/tap.h"
#include "virt/net/virtio_net.h"
#include "virt/vhost/server.h"

namespace offcore {
namespace {

struct NetServeOpts {
  std::string socket, tap;
  int queues = 1;
};

int netServe(const NetServeOpts& o) {
  const char* what = "vm net-serve";
  if (o.queues < 1 || o.queues > 32) return fail(what, makeError("--queues (queue pairs) must be 1..32"));
  // Stop signals go to sigwait only: block them before threads start.
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGTERM);
  sigaddset(&mask, SIGINT);
  ::pthread_sigmask(SIG_BLOCK, &mask, nullptr);

  auto tap = virt::openTap(o.tap, static_cast<uint16_t>(o.queues));
  if (!tap.ok()) return fail(what, tap.error());
  auto device = virt::makeVirtioNet(**tap);
  auto server = virt::VhostUserServer::listen(o.socket, *device);
  if (!server.ok()) return fail(what, server.error());
  std::printf("vhost-user-net on %s: tap %s (%d queue pair%s)\n", o.socket.c_str(), o.tap.c_str(), o.queues,
              o.queues == 1 ? "" : "s");
  std::fflush(stdout);

  Status ran = serveUntilSignal(**server, mask, "vm net-serve");
  server->reset();  // removes the socket file
  virt::VirtioNetStats s = device->stats();
  std::printf(
      "tx %llu frames %llu bytes (%llu dropped, %llu malformed); rx %llu frames %llu bytes (%llu dropped, "
      "%llu malformed)\n",
      static_cast<unsigned long long>(s.txFrames), static_cast<unsigned long long>(s.txBytes),
      static_cast<unsigned long long>(s.txDropped), static_cast<unsigned long long>(s.txMalformed),
      static_cast<unsigned long long>(s.rxFrames), static_cast<unsigned long long>(s.rxBytes),
      static_cast<unsigned long long>(s.rxDropped), static_cast<unsigned long long>(s.rxMalformed));
  std::fflush(stdout);
  if (!ran.ok()) return fail(what, ran.error());
  return 0;
}

}  // namespace

void registerVmNetServe(CLI::App& vm, CliContext& ctx) {
  auto o = std::make_shared<NetServeOpts>();
  auto* net = vm.add_subcommand("net-serve", "serve a virtio-net NIC to QEMU over a vhost-user socket, on a tap");
  net->add_option("--socket", o->socket, "unix socket QEMU connects to (-chardev socket,path=...)")->required();
  net->add_option("--tap", o->tap,
                  "tap device in this netns: attached to when it exists (multi_queue for --queues > 1), else "
                  "created (gone when net-serve exits)")
      ->required();
  net->add_option("--queues", o->queues, "queue pairs offered (QEMU's -netdev vhost-user,queues=N may be lower)");
  net->callback([&ctx, o] { ctx.action = [o] { return netServe(*o); }; });
}

}  // namespace offcore
