// `offcore dpu top`: a refreshing per-domain view. Raw terminal mode only
// while stdin is a terminal; the terminal is restored on every exit path.
#include <poll.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>

#include "cli/common.h"
#include "dpu/node.h"

namespace offcore {
namespace {

volatile sig_atomic_t g_interrupted = 0;
void onSigint(int) { g_interrupted = 1; }

class RawTerminal {
 public:
  RawTerminal() {
    if (!::isatty(STDIN_FILENO) || ::tcgetattr(STDIN_FILENO, &saved_) != 0) return;
    termios raw = saved_;
    raw.c_lflag &= ~static_cast<tcflag_t>(ICANON | ECHO);
    raw.c_cc[VMIN] = 0;
    raw.c_cc[VTIME] = 0;
    active_ = ::tcsetattr(STDIN_FILENO, TCSANOW, &raw) == 0;
  }
  ~RawTerminal() {
    if (active_) ::tcsetattr(STDIN_FILENO, TCSANOW, &saved_);
  }
  bool active() const { return active_; }

 private:
  termios saved_{};
  bool active_ = false;
};

}  // namespace

int runTop(NodeManager& nodes, const std::vector<std::string>& names, double interval_s, int iterations) {
  struct sigaction sa {};
  sa.sa_handler = onSigint;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
  RawTerminal term;
  bool tty_out = ::isatty(STDOUT_FILENO);

  std::map<std::string, double> last_cpu;
  auto last_time = std::chrono::steady_clock::now();
  for (int i = 0; iterations == 0 || i < iterations; ++i) {
    auto now = std::chrono::steady_clock::now();
    double dt = std::chrono::duration<double>(now - last_time).count();
    last_time = now;
    std::vector<std::vector<std::string>> rows{{"NODE", "DOMAIN", "CPUS", "CPU%", "CPU-SECONDS", "MEMORY", "PIDS"}};
    for (const auto& n : names) {
      auto st = fetchNodeStatus(nodes, n);
      if (!st.ok()) {
        rows.push_back({n, "-", "-", "-", "-", st.error().message, "-"});
        continue;
      }
      for (const char* d : {"soc", "host"}) {
        const auto& dom = (*st)["domains"][d];
        double cpu = dom.value("cpu_seconds", 0.0);
        std::string key = n + "/" + d;
        char pct[32] = "-";
        if (i > 0 && last_cpu.count(key) && dt > 0) {
          std::snprintf(pct, sizeof pct, "%.1f", 100.0 * (cpu - last_cpu[key]) / dt);
        }
        last_cpu[key] = cpu;
        char secs[32];
        std::snprintf(secs, sizeof secs, "%.2f", cpu);
        rows.push_back({n, d, dom.value("cpus", ""), pct, secs, humanBytes(dom.value("memory_bytes", 0ULL)),
                        std::to_string(dom.value("pids", 0))});
      }
    }
    if (tty_out) std::printf("\033[H\033[2J");
    std::printf("offcore dpu top   (q quits)\n%s", renderTable(rows).c_str());
    if (!tty_out) std::printf("\n");
    std::fflush(stdout);

    // Wait for the interval, or a 'q', or Ctrl-C.
    auto until = now + std::chrono::duration<double>(interval_s);
    while (!g_interrupted && std::chrono::steady_clock::now() < until) {
      int ms =
          static_cast<int>(std::chrono::duration<double, std::milli>(until - std::chrono::steady_clock::now()).count());
      pollfd p{STDIN_FILENO, POLLIN, 0};
      int n = term.active() ? ::poll(&p, 1, ms < 0 ? 0 : ms)
                            : (::usleep(static_cast<useconds_t>(std::max(ms, 0)) * 1000), 0);
      if (n > 0) {
        char c;
        if (::read(STDIN_FILENO, &c, 1) == 1 && (c == 'q' || c == 'Q')) return 0;
      }
    }
    if (g_interrupted) return 0;
  }
  return 0;
}

}  // namespace offcore
