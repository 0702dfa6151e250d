// `offcore demo`, storage: a storage host on the fabric runs `offcore target
// serve`; a volume is attached as a disk by the node's SoC; the host makes
// a filesystem on it, writes a checksummed file and reads it back after a
// remount with cold caches, then fio measures 4K random reads on the disk
// beside the same job on a local file. In between, the SoC's disk service is
// killed (SIGKILL) under a running verified write: the agent restarts it, the
// new process takes over the same FUSE connection, and the host only pauses.
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "bench/fio.h"
#include "cli/demo_common.h"

namespace offcore::demo {

namespace {

using nlohmann::json;

using Fio = FioResult;

// 4K random reads, QD32, `seconds` long, on `file` (laid out first by fio).
Result<Fio> fioRandRead(Context& ctx, const std::string& file, const std::string& out, int seconds) {
  OC_TRY(run({"fio", "--name=randread", "--filename=" + file, "--rw=randread", "--bs=4k", "--iodepth=32",
              "--ioengine=libaio", "--direct=1", "--size=256M", "--time_based", "--runtime=" + std::to_string(seconds),
              "--randrepeat=0", "--output-format=json", "--output=" + out},
             inDomain(ctx, Domain::kHost)));
  OC_ASSIGN_OR_RETURN(std::string text, readFile(out));
  auto f = parseFioJson(text, true);
  if (!f.ok()) return f.error().wrap(out);
  return f;
}

Result<std::string> md5Of(Context& ctx, const std::string& file) {
  OC_ASSIGN_OR_RETURN(std::string out, output({"md5sum", file}, inDomain(ctx, Domain::kHost)));
  return out.substr(0, out.find(' '));
}

// The pid the node's agent reports for a running service, 0 if none.
pid_t servicePid(Context& ctx, const std::string& service) {
  auto out = output({ctx.self, "dpu", "service", "list", "--name", ctx.node, "--json"});
  auto j = json::parse(out.valueOr("[]"), nullptr, false);
  if (!j.is_array()) return 0;
  for (const auto& s : j) {
    if (s.is_object() && s.value("name", "") == service && s.value("state", "") == "running") return s.value("pid", 0);
  }
  return 0;
}

// fio writes 192 MiB (rate-limited, so it runs ~3 s) with crc32c verify on
// the mounted disk; 1 s in, the disk service gets SIGKILL.
Status crashUnderWrite(Context& ctx, Cleanup& undo, const std::string& disk, const std::string& file,
                       const std::string& mnt, const std::string& dir) {
  const std::string service = "disk-" + disk;
  pid_t before = servicePid(ctx, service);
  if (before <= 0) return makeError("the agent reports no running " + service + " service");
  pid_t after = 0;
  double back_after = 0;
  auto killService = [&]() -> Status {
    ::kill(before, SIGKILL);
    auto t = Clock::now();
    bool took_over = waitFor(
        [&] {
          after = servicePid(ctx, service);
          auto rec = json::parse(readFile(file + ".json").valueOr("{}"), nullptr, false);
          return after > 0 && after != before && rec.is_object() && rec.value("pid", 0) == after &&
                 rec.value("adopted", false);
        },
        10000);
    OC_TRY(checkInterrupted());
    if (!took_over) {
      return makeError("the disk service did not come back and take over its connection; see " +
                       ctx.cli.config.run_root + "/" + ctx.node + "/" + service + ".log");
    }
    back_after = secondsSince(t);
    return okStatus();
  };
  OC_ASSIGN_OR_RETURN(FaultedWrite fw,
                      verifiedWriteThrough(ctx, undo,
                                           {"--name=crash", "--filename=" + mnt + "/crash.dat", "--rw=write",
                                            "--bs=64k", "--size=192M", "--rate=64m", "--iodepth=8"},
                                           dir + "/fio-crash", killService, "the disk service was killed"));
  std::printf(
      "disk service %s (pid %d) killed with SIGKILL %.1f s into a 192 MiB write with crc32c verify; the agent "
      "restarted it as pid %d, which took over the same FUSE connection %.1f s later\n",
      service.c_str(), before, fw.fault_at_s, after, back_after);
  std::printf(
      "the host never noticed: fio finished in %.1f s with 0 errors, %.0f writes verified by %.0f reads; worst "
      "latency (the pause) %.0f ms\n",
      fw.took_s, fw.write.ios, fw.read.ios, std::max(fw.write.max_us, fw.read.max_us) / 1000.0);
  return okStatus();
}

}  // namespace

Result<FaultedWrite> verifiedWriteThrough(Context& ctx, Cleanup& undo, const std::vector<std::string>& job,
                                          const std::string& base, const std::function<Status()>& fault,
                                          const std::string& what) {
  std::vector<std::string> argv{"fio"};
  argv.insert(argv.end(), job.begin(), job.end());
  argv.insert(argv.end(), {"--ioengine=libaio", "--direct=1", "--verify=crc32c", "--verify_fatal=1",
                           "--verify_state_save=0", "--output-format=json", "--output=" + base + ".json"});
  SpawnOptions host = inDomain(ctx, Domain::kHost);
  host.output_file = base + ".log";
  host.new_session = true;  // stopped by the undo stack, in order
  OC_ASSIGN_OR_RETURN(pid_t fio, spawn(argv, host));
  auto running = std::make_shared<pid_t>(fio);
  undo.add("fio writer", [running] {
    if (*running > 0) stopDaemon(*running, 0);
  });
  int status = 0;
  auto finished = [&] { return ::waitpid(fio, &status, WNOHANG) == fio; };
  auto t = Clock::now();
  if (waitFor(finished, 1000)) return makeError("fio ended before the fault; see " + base + ".log");
  OC_TRY(checkInterrupted());
  FaultedWrite out;
  out.fault_at_s = secondsSince(t);
  OC_TRY(fault());
  if (!waitFor(finished, 120000)) {
    OC_TRY(checkInterrupted());
    return makeError("fio did not finish within 2 minutes of the fault; see " + base + ".log");
  }
  *running = 0;
  out.took_s = secondsSince(t);
  OC_ASSIGN_OR_RETURN(std::string text, readFile(base + ".json"));
  OC_ASSIGN_OR_RETURN(out.write, parseFioJson(text, false));
  OC_ASSIGN_OR_RETURN(out.read, parseFioJson(text, true));
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || out.write.error != 0) {
    return makeError("fio failed after " + what + " (error " + std::to_string(out.write.error) + "); see " + base +
                     ".log");
  }
  return out;
}

Result<StorageHost> startStorageHost(Context& ctx, Cleanup& undo, const std::string& host, const std::string& dir) {
  const std::string self = ctx.self, run_root = ctx.cli.config.run_root;
  OC_ASSIGN_OR_RETURN(std::string ip, addFabricHost(ctx, undo, host));
  undo.add("gateway run dir", [run_root, host] { (void)removeTree(run_root + "/targets/" + host); });
  OC_ASSIGN_OR_RETURN(pid_t gw, startDaemon({self, "fabric", "exec", host, "--", self, "target", "serve", "--listen",
                                             ip + ":4420", "--data", dir + "/data", "--name", host},
                                            dir + "/gateway.log"));
  undo.add("gateway", [gw] { stopDaemon(gw); });
  std::string api = run_root + "/targets/" + host + "/api.sock";
  if (!waitFor([&] { return unixSocketAnswers(api); }, 10000)) {
    OC_TRY(checkInterrupted());
    return makeError("the storage gateway did not start; see " + dir + "/gateway.log");
  }
  return StorageHost{ip, gw};
}

Status runStorage(Context& ctx) {
  Cleanup undo("storage");
  const std::string host = "ds" + ctx.id, dir = ctx.work + "/storage", vol = "v" + ctx.id, disk = "dd" + ctx.id;
  const std::string self = ctx.self, node = ctx.node, run_root = ctx.cli.config.run_root;
  OC_TRY(makeDirs(dir));
  undo.add("scratch dir", [dir] { (void)removeTree(dir); });

  auto t = Clock::now();
  OC_ASSIGN_OR_RETURN(StorageHost sh, startStorageHost(ctx, undo, host, dir));
  const std::string ip = sh.ip;
  const pid_t gw = sh.gateway_pid;
  // Only this node may attach the volume, and it must prove it: the gateway
  // makes a DH-HMAC-CHAP secret for the node, handed to the SoC in a 0600 file.
  const std::string node_nqn = "nqn.2026-11.io.offcore:node:" + node;
  OC_ASSIGN_OR_RETURN(std::string created, output({self, "volume", "create", vol, "--size", "1G", "--target", host,
                                                   "--allow-host", node_nqn, "--json"}));
  auto created_doc = json::parse(created, nullptr, false);
  std::string secret;
  if (!created_doc.is_discarded() && created_doc.contains("new_secrets") && created_doc["new_secrets"].is_array() &&
      !created_doc["new_secrets"].empty()) {
    secret = created_doc["new_secrets"][0].value("dhchap_secret", "");
  }
  if (secret.empty()) return makeError("the gateway made no DH-HMAC-CHAP secret for " + node_nqn);
  const std::string secret_file = dir + "/node.secret";
  OC_TRY(writeFileAtomic(secret_file, "dhchap_secret=" + secret + "\n", 0600));
  undo.add("volume", [self, vol, host] { (void)runCapture({self, "volume", "delete", vol, "--target", host}); });
  std::printf("storage host %s (%s) serves NVMe/TCP on :4420 (gateway pid %d); volume %s, 1 GiB thin (%.1f s)\n",
              host.c_str(), ip.c_str(), gw, vol.c_str(), secondsSince(t));

  t = Clock::now();
  std::string uri = "nvme-tcp://" + ip + ":4420/nqn.2026-11.io.offcore:" + host + ":" + vol;
  OC_TRY(run({self, "disk", "attach", uri, "--node", node, "--name", disk, "--queue-depth", "64", "--secret-file",
              secret_file}));
  undo.add("disk", [self, disk, node] { (void)runCapture({self, "disk", "detach", disk, "--node", node, "--force"}); });
  std::string file = run_root + "/" + node + "/disks/" + disk;
  OC_ASSIGN_OR_RETURN(std::string loop_out, output({"losetup", "--find", "--show", "--direct-io=on", file}));
  std::string loop = trim(loop_out);
  undo.add("loop device", [loop] { (void)runCapture({"losetup", "-d", loop}); });
  std::printf(
      "disk attach in the SoC, authenticated with DH-HMAC-CHAP as %s: the host sees %s (FUSE file served by the "
      "SoC's initiator), loop %s (%.1f s)\n",
      node_nqn.c_str(), file.c_str(), loop.c_str(), secondsSince(t));

  t = Clock::now();
  const std::string mnt = dir + "/mnt";
  OC_TRY(makeDirs(mnt));
  OC_TRY(run({"mkfs.ext4", "-q", loop}, inDomain(ctx, Domain::kHost)));
  undo.add("mount", [mnt] { (void)runCapture({"umount", "-l", mnt}); });
  OC_TRY(run({"mount", loop, mnt}));
  std::printf("mkfs.ext4 + mount on the host: %.1f s\n", secondsSince(t));

  t = Clock::now();
  OC_TRY(run({"dd", "if=/dev/urandom", "of=" + mnt + "/data", "bs=1M", "count=32", "conv=fsync", "status=none"},
             inDomain(ctx, Domain::kHost)));
  OC_ASSIGN_OR_RETURN(std::string written, md5Of(ctx, mnt + "/data"));
  double write_s = secondsSince(t);
  OC_TRY(run({"umount", mnt}));
  (void)writeKernelFile("/proc/sys/vm/drop_caches", "3");
  OC_TRY(run({"mount", loop, mnt}));
  t = Clock::now();
  OC_ASSIGN_OR_RETURN(std::string read, md5Of(ctx, mnt + "/data"));
  double read_s = secondsSince(t);
  if (read != written) return makeError("checksum mismatch on the disk: wrote " + written + ", read " + read);
  std::printf("32 MiB written, md5 %s (%.1f s); read back after remount with cold caches: %s (%.1f s) -> match\n",
              written.c_str(), write_s, read.c_str(), read_s);

  OC_TRY(crashUnderWrite(ctx, undo, disk, file, mnt, dir));
  (void)writeKernelFile("/proc/sys/vm/drop_caches", "3");
  OC_ASSIGN_OR_RETURN(std::string again, md5Of(ctx, mnt + "/data"));
  if (again != written) return makeError("the file written before the crash changed: " + again);
  std::printf("the file written before the crash still reads md5 %s\n", again.c_str());

  const int seconds = 4;
  std::printf("fio 4K random reads, QD32, O_DIRECT, %d s each, 256 MiB file (laid out first) ...\n", seconds);
  OC_ASSIGN_OR_RETURN(Fio on_disk, fioRandRead(ctx, mnt + "/fio.dat", dir + "/fio-disk.json", seconds));
  std::string local = dir + "/local-fio.dat";
  undo.add("local file", [local] { ::unlink(local.c_str()); });
  OC_ASSIGN_OR_RETURN(Fio on_local, fioRandRead(ctx, local, dir + "/fio-local.json", seconds));
  double ratio = on_local.iops > 0 ? on_disk.iops / on_local.iops : 0;
  std::printf(
      "4K randread: %s IOPS over NVMe/TCP+FUSE vs %s IOPS local file (%.2fx); p50 %.0f vs %.0f us, "
      "p99 %.0f vs %.0f us\n",
      groupThousands(on_disk.iops).c_str(), groupThousands(on_local.iops).c_str(), ratio, on_disk.p50_us,
      on_local.p50_us, on_disk.p99_us, on_local.p99_us);
  std::printf("(one 2-core machine: fio, the SoC's initiator and the gateway share its cores; a DPU would not)\n");
  return okStatus();
}

}  // namespace offcore::demo
