// offcore-cni: the CNI plugin binary. The runtime passes the command and the
// container in CNI_* variables and the network configuration on stdin; the
// result (or a CNI error JSON) goes to stdout, warnings to stderr.
#include <curl/curl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "base/config.h"
#include "cni/cni_config.h"
#include "cni/cni_result.h"
#include "cni/plugin.h"

extern char** environ;

namespace {

// Reads at most limit + 1 bytes, so an oversized config is seen (and
// refused by the parser) without reading all of it.
bool readStdin(std::string& out, size_t limit) {
  char buf[65536];
  while (out.size() <= limit) {
    ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
    if (n == 0) return true;
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    out.append(buf, static_cast<size_t>(n));
  }
  return true;
}

void writeAll(int fd, const std::string& s) {
  size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    done += static_cast<size_t>(n);
  }
}

// The agent runs ADDs one at a time on its loop (a VF is a few `ip`
// commands, about 0.2 s), so a burst of a hundred pods on one node queues
// for tens of seconds (tests/integration/cni_parallel_etcd_test.sh: 200
// over two nodes, ~37 s). The runtime keeps its own deadline (kubelet's
// runtime request timeout: 2 min).
constexpr long kAgentTimeoutMs = 120000;

}  // namespace

int main() {
  using namespace offcore;
  curl_global_init(CURL_GLOBAL_DEFAULT);
  CniInput in;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    size_t eq = kv.find('=');
    if (kv.rfind("CNI_", 0) == 0 && eq != std::string::npos) in.env[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  std::string warnings;
  // VERSION may be run by hand with nothing on stdin; do not wait for it.
  auto command = in.env.find("CNI_COMMAND");
  if (command == in.env.end() || command->second != "VERSION") {
    if (!readStdin(in.config, kCniMaxConfigBytes)) {
      std::string why = std::strerror(errno);
      writeAll(STDOUT_FILENO, renderCniError(kCniLatestVersion, kCniIoFailure,
                                             "cannot read the network configuration from stdin: " + why) +
                                  "\n");
      return 1;
    }
    // The node's run dir follows the machine's offcore config unless the
    // network configuration names its own runRoot.
    if (auto cfg = loadConfig(); cfg.ok()) {
      in.default_run_root = cfg->run_root;
    } else {
      warnings = "offcore-cni: warning: " + cfg.error().message + "; runRoot defaults to " + in.default_run_root + "\n";
    }
  }
  CniOutcome outcome =
      runCniPlugin(in, [](const std::string& socket) { return makeAgentBackend(socket, kAgentTimeoutMs); });
  writeAll(STDOUT_FILENO, outcome.out);
  writeAll(STDERR_FILENO, warnings + outcome.err);
  return outcome.exit_code;
}
