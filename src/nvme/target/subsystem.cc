#include "nvme/target/subsystem.h"

#include <algorithm>

namespace offcore::nvme {

Subsystem::Subsystem(std::string nqn, std::string serial, std::vector<Namespace> namespaces,
                     std::vector<std::string> allowed_hosts)
    : nqn_(std::move(nqn)),
      serial_(std::move(serial)),
      allowed_hosts_(std::move(allowed_hosts)),
      namespaces_(std::make_shared<const std::vector<Namespace>>(std::move(namespaces))) {}

bool Subsystem::allows(const std::string& host_nqn) const {
  std::lock_guard<std::mutex> lock(hosts_mutex_);
  if (allowed_hosts_.empty()) return true;
  for (const auto& entry : allowed_hosts_) {
    if (entry == host_nqn) return true;
    // "prefix:*" admits every NQN below the prefix (at least one more byte).
    if (entry.size() >= 2 && entry.back() == '*' && entry[entry.size() - 2] == ':' && host_nqn.size() >= entry.size() &&
        host_nqn.compare(0, entry.size() - 1, entry, 0, entry.size() - 1) == 0) {
      return true;
    }
  }
  return false;
}

void Subsystem::setAllowedHosts(std::vector<std::string> hosts) {
  std::lock_guard<std::mutex> lock(hosts_mutex_);
  allowed_hosts_ = std::move(hosts);
}

std::vector<std::string> Subsystem::allowedHosts() const {
  std::lock_guard<std::mutex> lock(hosts_mutex_);
  return allowed_hosts_;
}

void Subsystem::setHostSecrets(std::map<std::string, auth::DhchapSecrets> secrets) {
  std::lock_guard<std::mutex> lock(hosts_mutex_);
  host_secrets_ = std::move(secrets);
}

std::optional<auth::DhchapSecrets> Subsystem::secretsFor(const std::string& host_nqn) const {
  std::lock_guard<std::mutex> lock(hosts_mutex_);
  auto it = host_secrets_.find(host_nqn);
  if (it == host_secrets_.end()) return std::nullopt;
  return it->second;
}

void Subsystem::replaceNamespaces(std::vector<Namespace> namespaces) {
  std::atomic_store(&namespaces_, std::make_shared<const std::vector<Namespace>>(std::move(namespaces)));
}

void SubsystemRegistry::add(std::shared_ptr<Subsystem> subsystem) {
  std::lock_guard<std::mutex> lock(mutex_);
  subsystems_[subsystem->nqn()] = std::move(subsystem);
  generation_++;
}

std::shared_ptr<Subsystem> SubsystemRegistry::remove(const std::string& nqn) {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = subsystems_.find(nqn);
  if (it == subsystems_.end()) return nullptr;
  auto s = it->second;
  subsystems_.erase(it);
  generation_++;
  return s;
}

std::shared_ptr<Subsystem> SubsystemRegistry::find(const std::string& nqn) const {
  std::lock_guard<std::mutex> lock(mutex_);
  auto it = subsystems_.find(nqn);
  return it == subsystems_.end() ? nullptr : it->second;
}

std::vector<std::shared_ptr<Subsystem>> SubsystemRegistry::list() const {
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<std::shared_ptr<Subsystem>> out;
  for (auto& [_, s] : subsystems_) out.push_back(s);
  return out;
}

}  // namespace offcore::nvme
