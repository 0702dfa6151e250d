// `offcore demo`, mirrored storage: a volume on two storage hosts, attached
// by the node's SoC as one disk mirrored over both (the nexus). fio writes
// with crc32c verify while one storage host is killed with SIGKILL: the
// host sees no error, the disk goes degraded; the storage host comes back
// and the SoC rebuilds only the regions it missed, printing the bytes.
#include <signal.h>

#include <cstdio>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "cli/demo_common.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

json diskRecord(const std::string& file) {
  auto j = json::parse(readFile(file + ".json").valueOr("{}"), nullptr, false);
  return j.is_object() ? j : json::object();
}

std::string nexusState(const json& rec) {
  if (!rec.contains("nexus") || !rec["nexus"].is_object()) return "";
  return rec["nexus"].value("state", "");
}

}  // namespace

Status runStorageMirror(Context& ctx) {
  Cleanup undo("mirror");
  const std::string dir = ctx.work + "/mirror", vol = "m" + ctx.id, disk = "dm" + ctx.id;
  const std::string self = ctx.self, node = ctx.node, run_root = ctx.cli.config.run_root;
  const std::string host_a = "dma" + ctx.id, host_b = "dmb" + ctx.id;
  OC_TRY(makeDirs(dir + "/a"));
  OC_TRY(makeDirs(dir + "/b"));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });

  auto t = Clock::now();
  OC_ASSIGN_OR_RETURN(StorageHost a, startStorageHost(ctx, undo, host_a, dir + "/a"));
  OC_ASSIGN_OR_RETURN(StorageHost b, startStorageHost(ctx, undo, host_b, dir + "/b"));
  OC_TRY(run({self, "volume", "create", vol, "--size", "512M", "--replicas", "2", "--targets", host_a + "," + host_b}));
  undo.add("volume", [self, vol] { (void)runCapture({self, "volume", "delete", vol, "--force"}); });
  // A lost replica stalls writes at most 1 s before the nexus goes on without it.
  OC_TRY(run({self, "disk", "attach", "--volume", vol, "--node", node, "--name", disk, "--fast-io-fail", "1"}));
  undo.add("disk", [self, disk, node] { (void)runCapture({self, "disk", "detach", disk, "--node", node, "--force"}); });
  const std::string file = run_root + "/" + node + "/disks/" + disk;
  std::printf(
      "replicated volume %s (512 MiB, 2 replicas) on storage hosts %s and %s; the SoC attached it as one disk "
      "mirrored over both: %s (%.1f s)\n",
      vol.c_str(), host_a.c_str(), host_b.c_str(), file.c_str(), secondsSince(t));

  // fio writes 96 MiB at 32 MiB/s (3 s) with verify; 1 s in, host B dies.
  auto killB = [&]() -> Status {
    ::kill(b.gateway_pid, SIGKILL);
    return okStatus();
  };
  OC_ASSIGN_OR_RETURN(FaultedWrite fw,
                      verifiedWriteThrough(ctx, undo,
                                           {"--name=mirror", "--filename=" + file, "--rw=randwrite", "--bs=64k",
                                            "--size=96M", "--rate=32m", "--iodepth=8", "--randrepeat=0"},
                                           dir + "/fio", killB, "one storage host died"));
  if (!waitFor([&] { return nexusState(diskRecord(file)) == "degraded"; }, 10000)) {
    return makeError("the disk did not report degraded after storage host " + host_b +
                     " died: " + diskRecord(file).dump());
  }
  json rec = diskRecord(file);
  uint64_t missed = rec["nexus"]["replicas"][1].value("missed_bytes", 0ULL);
  std::printf(
      "storage host %s killed with SIGKILL %.1f s into a 96 MiB verified write: fio finished in %.1f s with 0 "
      "errors (worst latency %.0f ms); the disk is degraded, replica on %s behind by %llu MiB\n",
      host_b.c_str(), fw.fault_at_s, fw.took_s, fw.write.max_us / 1000.0, host_b.c_str(),
      static_cast<unsigned long long>(missed >> 20));

  t = Clock::now();
  OC_ASSIGN_OR_RETURN(pid_t gw, startDaemon({self, "fabric", "exec", host_b, "--", self, "target", "serve", "--listen",
                                             b.ip + ":4420", "--data", dir + "/b/data", "--name", host_b},
                                            dir + "/b/gateway-restart.log"));
  undo.add("restarted gateway", [gw] { stopDaemon(gw); });
  if (!waitFor([&] { return nexusState(diskRecord(file)) == "online"; }, 60000)) {
    OC_TRY(checkInterrupted());
    return makeError("the replica on " + host_b + " was not rebuilt within 60 s: " + diskRecord(file).dump());
  }
  std::string log = readFile(run_root + "/" + node + "/disk-" + disk + ".log").valueOr("");
  size_t at = log.rfind("rebuilt:");
  std::string line = at == std::string::npos ? "" : log.substr(at, log.find('\n', at) - at);
  std::printf(
      "storage host %s back: the SoC rebuilt its replica while the disk stayed attached (%s); online again after %.1f "
      "s\n",
      host_b.c_str(), line.empty() ? "no log line" : line.c_str(), secondsSince(t));
  if (missed > 0 && line.find("rebuilt: " + std::to_string(missed >> 20) + " MiB") == std::string::npos) {
    return makeError("the rebuild did not copy exactly the " + std::to_string(missed >> 20) +
                     " MiB it missed: " + line);
  }
  std::printf("only the regions written while it was away were copied, not the 512 MiB volume\n");
  return okStatus();
}

}  // namespace offcore::demo
