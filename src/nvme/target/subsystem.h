// NVMe subsystems as the target exports them: one per volume, with one
// namespace (NSID 1) and a host allow-list. The registry is read on Connect
// and by discovery; the I/O path never touches it.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "block/block_device.h"
#include "nvme/auth/dhchap_target.h"

namespace offcore::nvme {

struct Namespace {
  uint32_t nsid = 1;
  std::shared_ptr<BlockDevice> device;
  std::array<uint8_t, 16> nguid{};  // also used as the UUID
  bool read_only = false;
};

class Subsystem {
 public:
  Subsystem(std::string nqn, std::string serial, std::vector<Namespace> namespaces,
            std::vector<std::string> allowed_hosts);

  const std::string& nqn() const { return nqn_; }
  const std::string& serial() const { return serial_; }
  bool allows(const std::string& host_nqn) const;
  void setAllowedHosts(std::vector<std::string> hosts);
  std::vector<std::string> allowedHosts() const;
  // DH-HMAC-CHAP secrets by host NQN. A host with secrets must authenticate
  // every queue after Connect; one without is admitted by its NQN alone.
  void setHostSecrets(std::map<std::string, auth::DhchapSecrets> secrets);
  std::optional<auth::DhchapSecrets> secretsFor(const std::string& host_nqn) const;

  // Lock-free snapshot for the I/O path.
  std::shared_ptr<const std::vector<Namespace>> namespaces() const { return std::atomic_load(&namespaces_); }
  void replaceNamespaces(std::vector<Namespace> namespaces);

 private:
  std::string nqn_;
  std::string serial_;
  mutable std::mutex hosts_mutex_;
  std::vector<std::string> allowed_hosts_;
  std::map<std::string, auth::DhchapSecrets> host_secrets_;
  std::shared_ptr<const std::vector<Namespace>> namespaces_;
};

class SubsystemRegistry {
 public:
  void add(std::shared_ptr<Subsystem> subsystem);
  std::shared_ptr<Subsystem> remove(const std::string& nqn);
  std::shared_ptr<Subsystem> find(const std::string& nqn) const;
  std::vector<std::shared_ptr<Subsystem>> list() const;
  // Bumped on every change; the discovery log's GENCTR.
  uint64_t generation() const { return generation_.load(); }

 private:
  mutable std::mutex mutex_;
  std::map<std::string, std::shared_ptr<Subsystem>> subsystems_;
  std::atomic<uint64_t> generation_{1};
};

}  // namespace offcore::nvme
