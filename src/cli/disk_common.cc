#include "cli/disk_common.h"

#include <sys/stat.h>

#include <cstdio>

#include "base/files.h"
#include "disk/fd_keeper.h"
#include "nvme/auth/dhchap_key.h"

namespace offcore {

Result<nvme::NvmeUri> parseDiskUri(const std::string& uri) {
  OC_ASSIGN_OR_RETURN(auto u, nvme::parseNvmeUri(uri));
  if (u.nqn.empty())
    return makeError("bad disk URI '" + uri + "': no NQN after the address (use nvme-tcp://ADDR:PORT/NQN)");
  return u;
}

std::string disksDir(const CliContext& ctx, const std::string& node) {
  return ctx.config.run_root + "/" + node + "/disks";
}
std::string secretsDir(const CliContext& ctx, const std::string& node) {
  return ctx.config.run_root + "/" + node + "/secrets";
}

Result<DiskSecrets> readSecretFile(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errnoError("secret file " + path);
  if (st.st_mode & 077) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    return makeError("secret file " + path + " has mode " + mode + "; make it private first: chmod 600 " + path);
  }
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  DiskSecrets out;
  for (const auto& raw : splitLines(text)) {
    std::string line = raw;
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    if (line.rfind("dhchap_secret=", 0) == 0) {
      out.secret = line.substr(14);
    } else if (line.rfind("dhchap_ctrl_secret=", 0) == 0) {
      out.ctrl_secret = line.substr(19);
    } else if (line.rfind("DHHC-1:", 0) == 0 && out.secret.empty()) {
      out.secret = line;
    } else {
      return makeError("secret file " + path + ": unknown line (use dhchap_secret=... and dhchap_ctrl_secret=...)");
    }
  }
  if (out.secret.empty()) return makeError("secret file " + path + " holds no dhchap_secret");
  return out;
}

Status loadHostSecrets(const std::string& path, nvme::HostOptions& options) {
  OC_ASSIGN_OR_RETURN(DiskSecrets s, readSecretFile(path));
  auto key = nvme::auth::parseDhchapKey(s.secret);
  if (!key.ok()) return key.error().wrap(path);
  options.dhchap_secret = std::move(*key);
  if (!s.ctrl_secret.empty()) {
    auto ctrl = nvme::auth::parseDhchapKey(s.ctrl_secret);
    if (!ctrl.ok()) return ctrl.error().wrap(path);
    options.dhchap_ctrl_secret = std::move(*ctrl);
  }
  return okStatus();
}

Status checkSecrets(const DiskSecrets& s) {
  if (!s.secret.empty()) {
    auto k = nvme::auth::parseDhchapKey(s.secret);
    if (!k.ok()) return k.error().wrap("--dhchap-secret");
  }
  if (!s.ctrl_secret.empty()) {
    if (s.secret.empty()) return makeError("--dhchap-ctrl-secret needs --dhchap-secret too");
    auto k = nvme::auth::parseDhchapKey(s.ctrl_secret);
    if (!k.ok()) return k.error().wrap("--dhchap-ctrl-secret");
  }
  return okStatus();
}

std::string diskKeeper(const CliContext& ctx, const std::string& node) {
  return fdKeeperSocket(ctx.config.run_root, node, "disks");
}
std::string keptName(const std::string& file) { return "disk-" + file.substr(file.rfind('/') + 1); }

Status checkTimeouts(const DiskTimeouts& t) {
  if (t.io < 1) return makeError("--io-timeout must be at least 1 second");
  if (t.fast_io_fail < -1) return makeError("--fast-io-fail is seconds, or -1 for off");
  if (t.ctrl_loss < -1) return makeError("--ctrl-loss-timeout is seconds, or -1 to reconnect for ever");
  return okStatus();
}

std::string replicaName(const nvme::NvmeUri& d) { return d.address + ":" + std::to_string(d.port) + "/" + d.nqn; }

}  // namespace offcore
