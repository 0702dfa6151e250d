#include "mesh/tls/cert_manager.h"

#include <spdlog/spdlog.h>

namespace offcore::mesh::tls {

CertManager::CertManager(EventLoop& loop, CertIssuer& issuer, Options options)
    : loop_(loop), issuer_(issuer), options_(options) {}

CertManager::~CertManager() {
  for (auto& [id, held] : held_) {
    if (held.timer) loop_.cancelTimer(held.timer);
  }
}

Status CertManager::init() {
  OC_ASSIGN_OR_RETURN(acceptor_, TlsContext::createAcceptor(issuer_.caPem(), issuer_.trustDomain(), this));
  return okStatus();
}

Status CertManager::add(const std::string& identity) {
  if (held_.count(identity)) return okStatus();
  OC_ASSIGN_OR_RETURN(SpiffeId id, parseSpiffeId(identity));
  OC_ASSIGN_OR_RETURN(IssuedCert cert, issuer_.issue(id.str(), options_.ttl));
  OC_ASSIGN_OR_RETURN(auto ctx, TlsContext::create(issuer_.caPem(), issuer_.trustDomain(), cert));
  Held& held = held_[identity];
  held.cert = std::move(cert);
  held.ctx = std::move(ctx);
  auto half = std::chrono::duration_cast<std::chrono::milliseconds>(held.cert.not_after - held.cert.issued_at) / 2;
  schedule(identity, held, half);
  return okStatus();
}

void CertManager::remove(const std::string& identity) {
  auto it = held_.find(identity);
  if (it == held_.end()) return;
  if (it->second.timer) loop_.cancelTimer(it->second.timer);
  held_.erase(it);
}

void CertManager::schedule(const std::string& identity, Held& held, std::chrono::milliseconds delay) {
  if (held.timer) loop_.cancelTimer(held.timer);
  held.next_rotation = std::chrono::system_clock::now() + delay;
  held.timer = loop_.addTimer(delay, [this, identity] {
    auto it = held_.find(identity);
    if (it == held_.end()) return;
    it->second.timer = 0;
    Status st = rotate(identity);
    if (!st.ok()) {
      spdlog::warn("mesh: rotating the certificate of {} failed, retrying in {} ms: {}", identity,
                   options_.retry.count(), st.error().message);
      schedule(identity, it->second, options_.retry);
    }
  });
}

Status CertManager::rotate(const std::string& identity) {
  auto it = held_.find(identity);
  if (it == held_.end()) return makeError("no certificate held for " + identity + "; add the identity first");
  OC_ASSIGN_OR_RETURN(IssuedCert cert, issuer_.issue(identity, options_.ttl));
  OC_ASSIGN_OR_RETURN(auto ctx, TlsContext::create(issuer_.caPem(), issuer_.trustDomain(), cert));
  Held& held = it->second;
  spdlog::info("mesh: certificate of {} rotated (serial {} -> {})", identity, held.cert.serial, cert.serial);
  held.cert = std::move(cert);
  held.ctx = std::move(ctx);
  ++held.rotations;
  auto half = std::chrono::duration_cast<std::chrono::milliseconds>(held.cert.not_after - held.cert.issued_at) / 2;
  schedule(identity, held, half);
  return okStatus();
}

Result<std::shared_ptr<TlsContext>> CertManager::contextFor(const std::string& identity) {
  auto it = held_.find(identity);
  if (it == held_.end()) return makeError("no certificate for " + identity + " on this node (not a local workload)");
  return it->second.ctx;
}

std::vector<CertStatus> CertManager::status() const {
  std::vector<CertStatus> out;
  for (const auto& [id, held] : held_) {
    out.push_back(CertStatus{id, held.cert.serial, held.cert.not_before, held.cert.not_after, held.next_rotation,
                             held.rotations});
  }
  return out;
}

}  // namespace offcore::mesh::tls
