// offcore-nvme-bench: sequential reads or writes against an NVMe/TCP
// subsystem through our own initiator (there is no SPDK or kernel nvme-tcp
// on these machines), QD commands in flight, one JSON line of results.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "nvme/host/host.h"

using namespace offcore;
using namespace offcore::nvme;
using Clock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  CLI::App app{"sequential I/O against an NVMe/TCP subsystem"};
  std::string addr = "127.0.0.1", nqn, rw = "write", hostnqn;
  uint16_t port = 4420;
  uint32_t bs = 131072, qd = 32;
  int queues = 2;
  double seconds = 5;
  uint64_t size_mib = 1024;
  app.add_option("--addr", addr, "target address")->capture_default_str();
  app.add_option("--port", port, "target port")->capture_default_str();
  app.add_option("--nqn", nqn, "subsystem NQN")->required();
  app.add_option("--rw", rw, "write or read")->check(CLI::IsMember({"write", "read"}))->capture_default_str();
  app.add_option("--bs", bs, "bytes per command")->capture_default_str();
  app.add_option("--qd", qd, "commands in flight")->capture_default_str();
  app.add_option("--queues", queues, "I/O queues")->capture_default_str();
  app.add_option("--seconds", seconds, "run time")->capture_default_str();
  app.add_option("--size-mib", size_mib, "the range covered, from offset 0 (wraps)")->capture_default_str();
  app.add_option("--hostnqn", hostnqn, "host NQN (default: the initiator's)");
  CLI11_PARSE(app, argc, argv);

  HostOptions o;
  if (!hostnqn.empty()) o.host_nqn = hostnqn;
  o.io_queues = queues;
  o.queue_depth = std::max<uint32_t>(qd, 2);
  auto host = NvmeTcpHost::connect(addr, port, nqn, o);
  if (!host.ok()) {
    std::fprintf(stderr, "connect: %s\n", host.error().message.c_str());
    return 1;
  }
  const uint64_t span = std::min<uint64_t>(size_mib << 20, (*host)->sizeBytes()) / bs * bs;
  std::atomic<uint64_t> next{0}, ios{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<double> min_ms(qd, 1e9), max_ms(qd, 0), sum_ms(qd, 0);
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  for (uint32_t w = 0; w < qd; ++w) {
    workers.emplace_back([&, w] {
      std::vector<uint8_t> buf(bs, static_cast<uint8_t>(w + 1));
      while (!stop.load(std::memory_order_relaxed)) {
        uint64_t off = (next.fetch_add(bs) % span);
        auto t0 = Clock::now();
        Status s = rw == "write" ? (*host)->write(off, buf.data(), bs) : (*host)->read(off, buf.data(), bs);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!s.ok()) {
          errors++;
          continue;
        }
        ios++;
        min_ms[w] = std::min(min_ms[w], ms);
        max_ms[w] = std::max(max_ms[w], ms);
        sum_ms[w] += ms;
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : workers) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  double lo = *std::min_element(min_ms.begin(), min_ms.end());
  double hi = *std::max_element(max_ms.begin(), max_ms.end());
  double sum = 0;
  for (double v : sum_ms) sum += v;
  uint64_t n = ios.load();
  std::printf(
      "{\"rw\":\"%s\",\"bs\":%u,\"qd\":%u,\"seconds\":%.2f,\"ios\":%llu,\"errors\":%llu,\"mib_s\":%.1f,"
      "\"lat_min_ms\":%.3f,\"lat_avg_ms\":%.3f,\"lat_max_ms\":%.3f}\n",
      rw.c_str(), bs, qd, elapsed, static_cast<unsigned long long>(n), static_cast<unsigned long long>(errors.load()),
      static_cast<double>(n) * bs / elapsed / (1 << 20), n ? lo : 0.0, n ? sum / static_cast<double>(n) : 0.0, hi);
  (*host)->close();
  return errors.load() == 0 ? 0 : 1;
}
