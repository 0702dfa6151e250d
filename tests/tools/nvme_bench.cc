// offcore-nvme-bench: reads or writes against an NVMe/TCP subsystem through
// our own initiator (there is no SPDK or kernel nvme-tcp on these machines),
// QD commands in flight, sequential or random, as fast as it goes or paced
// to --rate I/Os per second in total; one JSON line of results with latency
// percentiles.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <random>
#include <thread>
#include <vector>

#include "nvme/host/host.h"

using namespace offcore;
using namespace offcore::nvme;
using Clock = std::chrono::steady_clock;

namespace {

double percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t i = std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"reads or writes against an NVMe/TCP subsystem"};
  std::string addr = "127.0.0.1", nqn, rw = "write", hostnqn, pattern = "seq";
  uint16_t port = 4420;
  uint32_t bs = 131072, qd = 32;
  int queues = 2;
  double seconds = 5, rate = 0;
  uint64_t size_mib = 1024;
  bool digests = false;
  app.add_option("--addr", addr, "target address")->capture_default_str();
  app.add_option("--port", port, "target port")->capture_default_str();
  app.add_option("--nqn", nqn, "subsystem NQN")->required();
  app.add_option("--rw", rw, "write or read")->check(CLI::IsMember({"write", "read"}))->capture_default_str();
  app.add_option("--pattern", pattern, "seq or rand (offsets aligned to bs)")
      ->check(CLI::IsMember({"seq", "rand"}))
      ->capture_default_str();
  app.add_option("--bs", bs, "bytes per command")->capture_default_str();
  app.add_option("--qd", qd, "commands in flight")->capture_default_str();
  app.add_option("--rate", rate, "I/Os per second in total, paced (0: as fast as it goes)")->capture_default_str();
  app.add_option("--queues", queues, "I/O queues")->capture_default_str();
  app.add_option("--seconds", seconds, "run time")->capture_default_str();
  app.add_option("--size-mib", size_mib, "the range covered, from offset 0 (wraps)")->capture_default_str();
  app.add_flag("--digests", digests, "header and data digests (CRC32C)");
  app.add_option("--hostnqn", hostnqn, "host NQN (default: the initiator's)");
  CLI11_PARSE(app, argc, argv);
  if (bs == 0 || bs % 512 != 0) {
    std::fprintf(stderr, "--bs must be a positive multiple of 512\n");
    return 2;
  }

  HostOptions o;
  if (!hostnqn.empty()) o.host_nqn = hostnqn;
  o.io_queues = queues;
  o.queue_depth = std::max<uint32_t>(qd, 2);
  o.header_digest = o.data_digest = digests;
  auto host = NvmeTcpHost::connect(addr, port, nqn, o);
  if (!host.ok()) {
    std::fprintf(stderr, "connect: %s\n", host.error().message.c_str());
    return 1;
  }
  const uint64_t span = std::min<uint64_t>(size_mib << 20, (*host)->sizeBytes()) / bs * bs;
  if (span == 0) {
    std::fprintf(stderr, "the namespace is smaller than one block of %u bytes\n", bs);
    return 1;
  }
  std::atomic<uint64_t> next{0}, ios{0}, errors{0};
  std::atomic<bool> stop{false};
  std::vector<std::vector<double>> lat_ms(qd);
  std::vector<std::thread> workers;
  const auto start = Clock::now();
  // Paced: each worker issues every qd / rate seconds from its own phase, so
  // the total is `rate` (a worker that falls behind catches up without a burst).
  const auto period = rate > 0 ? std::chrono::duration<double>(qd / rate) : std::chrono::duration<double>(0);
  for (uint32_t w = 0; w < qd; ++w) {
    workers.emplace_back([&, w] {
      std::vector<uint8_t> buf(bs, static_cast<uint8_t>(w + 1));
      std::mt19937_64 rng(0x9e3779b97f4a7c15ull * (w + 1));
      auto due = start + std::chrono::duration_cast<Clock::duration>(period * (static_cast<double>(w) / qd));
      lat_ms[w].reserve(1 << 16);
      while (!stop.load(std::memory_order_relaxed)) {
        if (rate > 0) {
          std::this_thread::sleep_until(due);
          due += std::chrono::duration_cast<Clock::duration>(period);
          if (due < Clock::now() - std::chrono::milliseconds(100)) due = Clock::now();
        }
        uint64_t off = pattern == "rand" ? (rng() % (span / bs)) * bs : (next.fetch_add(bs) % span);
        auto t0 = Clock::now();
        Status s = rw == "write" ? (*host)->write(off, buf.data(), bs) : (*host)->read(off, buf.data(), bs);
        double ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
        if (!s.ok()) {
          errors++;
          continue;
        }
        ios++;
        lat_ms[w].push_back(ms);
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  stop = true;
  for (auto& t : workers) t.join();
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::vector<double> all;
  for (auto& v : lat_ms) all.insert(all.end(), v.begin(), v.end());
  double sum = 0, lo = all.empty() ? 0 : all[0], hi = 0;
  for (double v : all) sum += v, lo = std::min(lo, v), hi = std::max(hi, v);
  uint64_t n = ios.load();
  double avg = n ? sum / static_cast<double>(n) : 0.0;
  double p50 = percentile(all, 0.5), p99 = percentile(all, 0.99);
  std::printf(
      "{\"rw\":\"%s\",\"pattern\":\"%s\",\"bs\":%u,\"qd\":%u,\"rate\":%.0f,\"digests\":%s,\"seconds\":%.2f,"
      "\"ios\":%llu,\"errors\":%llu,\"iops\":%.0f,\"mib_s\":%.1f,\"lat_min_ms\":%.3f,\"lat_avg_ms\":%.3f,"
      "\"lat_p50_ms\":%.3f,\"lat_p99_ms\":%.3f,\"lat_max_ms\":%.3f}\n",
      rw.c_str(), pattern.c_str(), bs, qd, rate, digests ? "true" : "false", elapsed,
      static_cast<unsigned long long>(n), static_cast<unsigned long long>(errors.load()),
      static_cast<double>(n) / elapsed, static_cast<double>(n) * bs / elapsed / (1 << 20), lo, avg, p50, p99, hi);
  (*host)->close();
  return errors.load() == 0 ? 0 : 1;
}
