// The gateway's DH-HMAC-CHAP secrets, per volume and allowed host, in
// <data>/dhchap-secrets.json (0600, written atomically). A host with a secret
// must authenticate every queue; one without is admitted by its NQN only.
// Secrets leave this file only in the reply that created them (shown once).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/result.h"
#include "gateway/requests.h"
#include "nvme/auth/dhchap_target.h"

namespace offcore::gateway {

struct HostSecret {
  std::string secret;       // DHHC-1 text
  std::string ctrl_secret;  // DHHC-1 text, or empty: the host cannot authenticate us
};
using VolumeSecrets = std::map<std::string, HostSecret>;  // by host NQN

// A secret shown once to the admin.
struct NewSecret {
  std::string nqn;
  std::string secret;       // empty when only the controller secret is new
  std::string ctrl_secret;  // empty when none was made
};

// The secrets a volume's new allow-list gets: a host new to the list gets a
// generated secret unless the request says "none" or gives one; a host that
// stays keeps what it had (a secret, or NQN-only) unless the request says
// otherwise. `created` collects the secrets generated here.
Result<VolumeSecrets> resolveHostSecrets(const std::vector<std::string>& hosts,
                                         const std::map<std::string, HostAuthRequest>& requests,
                                         const std::vector<std::string>& previous_hosts, const VolumeSecrets& previous,
                                         std::vector<NewSecret>* created);

// What the NVMe target uses.
Result<std::map<std::string, nvme::auth::DhchapSecrets>> toTargetSecrets(const VolumeSecrets& secrets);

class HostSecretFile {
 public:
  explicit HostSecretFile(std::string path) : path_(std::move(path)) {}
  Status load();
  VolumeSecrets forVolume(const std::string& volume) const;
  Status setVolume(const std::string& volume, VolumeSecrets secrets);  // empty: forget the volume
  const std::string& path() const { return path_; }

 private:
  Status save() const;
  std::string path_;
  std::map<std::string, VolumeSecrets> volumes_;
};

}  // namespace offcore::gateway
