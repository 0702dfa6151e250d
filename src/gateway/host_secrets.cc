#include "gateway/host_secrets.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "base/files.h"
#include "base/json.h"
#include "nvme/auth/dhchap_key.h"

namespace offcore::gateway {

using nlohmann::json;

namespace {

Result<std::string> generateSecret() {
  // hh 01: the secret is transformed with SHA-256 and the host NQN before
  // use, as nvme-cli's gen-dhchap-key --hmac=1 makes them.
  OC_ASSIGN_OR_RETURN(nvme::auth::DhchapKey k, nvme::auth::generateDhchapKey(nvme::auth::kHashSha256));
  return nvme::auth::formatDhchapKey(k);
}

}  // namespace

Result<VolumeSecrets> resolveHostSecrets(const std::vector<std::string>& hosts,
                                         const std::map<std::string, HostAuthRequest>& requests,
                                         const std::vector<std::string>& previous_hosts, const VolumeSecrets& previous,
                                         std::vector<NewSecret>* created) {
  using Mode = SecretRequest::Mode;
  VolumeSecrets out;
  for (const auto& nqn : hosts) {
    bool stays = std::find(previous_hosts.begin(), previous_hosts.end(), nqn) != previous_hosts.end();
    HostSecret had;
    if (auto it = previous.find(nqn); it != previous.end() && stays) had = it->second;
    HostAuthRequest req;
    if (auto it = requests.find(nqn); it != requests.end()) req = it->second;
    NewSecret shown{nqn, "", ""};
    HostSecret now = had;
    switch (req.secret.mode) {
      case Mode::kDefault:
      case Mode::kGenerate: {
        if (req.secret.mode == Mode::kDefault && stays) break;
        // A prefix entry ("nqn…:node:*") names many hosts: NQN only.
        if (req.secret.mode == Mode::kDefault && nqn.size() >= 2 && nqn.compare(nqn.size() - 2, 2, ":*") == 0) break;
        OC_ASSIGN_OR_RETURN(now.secret, generateSecret());
        shown.secret = now.secret;
        break;
      }
      case Mode::kNone: now = HostSecret{}; break;
      case Mode::kGiven: now.secret = req.secret.text; break;
    }
    switch (req.ctrl_secret.mode) {
      case Mode::kDefault: break;
      case Mode::kGenerate: {
        OC_ASSIGN_OR_RETURN(now.ctrl_secret, generateSecret());
        shown.ctrl_secret = now.ctrl_secret;
        break;
      }
      case Mode::kNone: now.ctrl_secret.clear(); break;
      case Mode::kGiven: now.ctrl_secret = req.ctrl_secret.text; break;
    }
    if (now.secret.empty() && !now.ctrl_secret.empty()) {
      return makeError("host " + nqn + " has a controller secret but no host secret; give it one");
    }
    if (!now.secret.empty()) out[nqn] = now;
    if (created && (!shown.secret.empty() || !shown.ctrl_secret.empty())) created->push_back(shown);
  }
  return out;
}

Result<std::map<std::string, nvme::auth::DhchapSecrets>> toTargetSecrets(const VolumeSecrets& secrets) {
  std::map<std::string, nvme::auth::DhchapSecrets> out;
  for (const auto& [nqn, s] : secrets) {
    nvme::auth::DhchapSecrets t;
    auto host = nvme::auth::parseDhchapKey(s.secret);
    if (!host.ok()) return host.error().wrap("secret of host " + nqn);
    t.host = std::move(*host);
    if (!s.ctrl_secret.empty()) {
      auto ctrl = nvme::auth::parseDhchapKey(s.ctrl_secret);
      if (!ctrl.ok()) return ctrl.error().wrap("controller secret for host " + nqn);
      t.ctrl = std::move(*ctrl);
    }
    out[nqn] = std::move(t);
  }
  return out;
}

Status HostSecretFile::load() {
  if (!pathExists(path_)) return okStatus();
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path_));
  auto doc = json::parse(text, nullptr, false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("volumes") || !doc["volumes"].is_object()) {
    return makeError(path_ +
                     " is not a secrets file; restore it from a backup or remove it (hosts lose their secrets)");
  }
  volumes_.clear();
  for (const auto& [volume, hosts] : doc["volumes"].items()) {
    if (!hosts.is_object()) return makeError(path_ + ": volume " + volume + " is not an object");
    for (const auto& [nqn, s] : hosts.items()) {
      if (!s.is_object() || !s.contains("dhchap_secret") || !s["dhchap_secret"].is_string()) {
        return makeError(path_ + ": host " + nqn + " of " + volume + " has no dhchap_secret");
      }
      volumes_[volume][nqn] = HostSecret{s["dhchap_secret"].get<std::string>(), s.value("dhchap_ctrl_secret", "")};
    }
  }
  return okStatus();
}

VolumeSecrets HostSecretFile::forVolume(const std::string& volume) const {
  auto it = volumes_.find(volume);
  return it == volumes_.end() ? VolumeSecrets{} : it->second;
}

Status HostSecretFile::setVolume(const std::string& volume, VolumeSecrets secrets) {
  if (secrets.empty()) {
    if (!volumes_.erase(volume)) return okStatus();
  } else {
    volumes_[volume] = std::move(secrets);
  }
  return save();
}

Status HostSecretFile::save() const {
  json vols = json::object();
  for (const auto& [volume, hosts] : volumes_) {
    json h = json::object();
    for (const auto& [nqn, s] : hosts) {
      json e{{"dhchap_secret", s.secret}};
      if (!s.ctrl_secret.empty()) e["dhchap_ctrl_secret"] = s.ctrl_secret;
      h[nqn] = e;
    }
    vols[volume] = h;
  }
  return writeFileAtomic(path_, dumpJson(json{{"volumes", vols}}, 2) + "\n", 0600);
}

}  // namespace offcore::gateway
