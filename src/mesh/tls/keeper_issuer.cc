#include "mesh/tls/keeper_issuer.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "mesh/tls/ossl.h"
#include "mesh/tls/x509_util.h"

namespace offcore::mesh::tls {

namespace {

using Clock = std::chrono::steady_clock;

// Waits for `events` on fd until `deadline`; false on timeout.
Result<bool> waitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    auto left = std::chrono::ceil<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) return false;
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n > 0) return true;
    if (n < 0 && errno != EINTR) return errnoError("CA channel: poll");
  }
}

Result<std::string> csrPem(EVP_PKEY* key) {
  X509ReqPtr req(X509_REQ_new());
  // The keeper reads the key and the signature only; the subject stays empty.
  if (!req || !X509_REQ_set_version(req.get(), 0) || !X509_REQ_set_pubkey(req.get(), key) ||
      !X509_REQ_sign(req.get(), key, EVP_sha256())) {
    return makeError("CSR: " + opensslError());
  }
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509_REQ(bio.get(), req.get())) return makeError("CSR pem: " + opensslError());
  return bioString(bio.get());
}

}  // namespace

Result<std::unique_ptr<KeeperIssuer>> KeeperIssuer::connect(int fd, std::chrono::milliseconds timeout) {
  std::unique_ptr<KeeperIssuer> issuer(new KeeperIssuer(fd, timeout));
  CsrRequest trust;
  trust.op = CsrRequest::Op::kTrust;
  OC_ASSIGN_OR_RETURN(CsrResponse r, issuer->roundTrip(trust));
  if (r.ca_pem.empty() || r.trust_domain.empty())
    return makeError("the keeper sent no CA certificate; restart the mesh");
  OC_TRY(parseCert(r.ca_pem));
  issuer->ca_pem_ = std::move(r.ca_pem);
  issuer->trust_domain_ = std::move(r.trust_domain);
  return issuer;
}

KeeperIssuer::~KeeperIssuer() {
  if (fd_ >= 0) ::close(fd_);
}

Result<CsrResponse> KeeperIssuer::roundTrip(CsrRequest request) {
  request.id = next_id_++;
  const std::string frame = encodeCsrRequest(request);
  if (frame.size() > kMaxCsrFrame + 4) return makeError("CA channel: request above 16 KiB");
  auto deadline = Clock::now() + timeout_;
  auto late = [&] {
    return makeError("the mesh keeper did not answer a certificate request within " + std::to_string(timeout_.count()) +
                     " ms; is `offcore mesh serve` running?");
  };
  for (size_t sent = 0; sent < frame.size();) {
    ssize_t n = ::send(fd_, frame.data() + sent, frame.size() - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EINTR) return errnoError("CA channel: send to the keeper");
    OC_ASSIGN_OR_RETURN(bool ready, waitFor(fd_, POLLOUT, deadline));
    if (!ready) return late();
  }
  while (true) {
    auto frame_in = reader_.next();
    if (!frame_in.ok()) return frame_in.error();
    if (*frame_in) {
      OC_ASSIGN_OR_RETURN(CsrResponse r, decodeCsrResponse(**frame_in));
      // id 0: the keeper's last word before it closes the channel.
      if (r.id == 0) return makeError("the mesh keeper closed the CA channel: " + r.error);
      if (r.id != request.id) continue;  // the answer to a request that timed out
      if (!r.ok) return makeError("the mesh keeper refused: " + r.error);
      return r;
    }
    OC_ASSIGN_OR_RETURN(bool ready, waitFor(fd_, POLLIN, deadline));
    if (!ready) return late();
    char buf[4096];
    ssize_t n = ::recv(fd_, buf, std::min(sizeof buf, reader_.room()), MSG_DONTWAIT);
    if (n == 0) return makeError("the mesh keeper closed the CA channel");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return errnoError("CA channel: read from the keeper");
    }
    reader_.append(buf, static_cast<size_t>(n));
  }
}

Result<IssuedCert> KeeperIssuer::issue(const std::string& spiffe_id, Seconds ttl) {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) return makeError("workload key: " + opensslError());
  CsrRequest request;
  request.op = CsrRequest::Op::kSign;
  request.spiffe_id = spiffe_id;
  OC_ASSIGN_OR_RETURN(request.csr_pem, csrPem(key.get()));
  request.ttl_s = ttl.count();
  OC_ASSIGN_OR_RETURN(CsrResponse r, roundTrip(std::move(request)));
  // What came back must be for our key and the identity asked for.
  OC_ASSIGN_OR_RETURN(X509Ptr cert, parseCert(r.cert_pem));
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    (void)opensslError();
    return makeError("the mesh keeper's certificate is not for the key of this request; restart the mesh");
  }
  OC_ASSIGN_OR_RETURN(std::string san, spiffeIdOf(cert.get()));
  if (san != spiffe_id) return makeError("the mesh keeper's certificate names " + san + ", asked for " + spiffe_id);
  IssuedCert out;
  out.spiffe_id = spiffe_id;
  OC_ASSIGN_OR_RETURN(out.key_pem, keyPem(key.get()));
  out.cert_pem = std::move(r.cert_pem);
  out.serial = serialHex(cert.get());
  out.not_before = asn1Time(X509_get0_notBefore(cert.get()));
  out.not_after = asn1Time(X509_get0_notAfter(cert.get()));
  out.issued_at = r.issued_at > 0 ? SystemTime(Seconds(r.issued_at)) : out.not_before;
  return out;
}

}  // namespace offcore::mesh::tls
