#include "mesh/tls/ca_service.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

namespace offcore::mesh::tls {

namespace {

CsrResponse refuse(uint64_t id, std::string why) {
  CsrResponse r;
  r.id = id;
  r.ok = false;
  if (why.size() > 1000) why.resize(1000);
  r.error = std::move(why);
  return r;
}

}  // namespace

CaService::CaService(Ca& ca, std::string node, Seconds max_ttl, NodeIdentities identities)
    : ca_(ca), node_(std::move(node)), max_ttl_(max_ttl), identities_(std::move(identities)) {}

CsrResponse CaService::handle(const CsrRequest& request) {
  if (request.op == CsrRequest::Op::kTrust) {
    CsrResponse r;
    r.id = request.id;
    r.ok = true;
    r.ca_pem = ca_.caPem();
    r.trust_domain = ca_.trustDomain();
    return r;
  }
  auto id = parseSpiffeId(request.spiffe_id);
  if (!id.ok()) return refuse(request.id, id.error().message);
  if (id->trust_domain != ca_.trustDomain()) {
    return refuse(request.id, request.spiffe_id + " is outside trust domain " + ca_.trustDomain());
  }
  auto allowed = identities_();
  if (!allowed.ok()) return refuse(request.id, "the keeper cannot read the cluster state: " + allowed.error().message);
  if (!allowed->count(id->str())) {
    return refuse(request.id, request.spiffe_id + " is not the identity of a mesh pod on node " + node_);
  }
  Seconds ttl = request.ttl_s > 0 ? std::min(Seconds(request.ttl_s), max_ttl_) : max_ttl_;
  auto cert = ca_.sign(request.csr_pem, id->str(), ttl);
  if (!cert.ok()) return refuse(request.id, cert.error().message);
  CsrResponse r;
  r.id = request.id;
  r.ok = true;
  r.cert_pem = std::move(cert->cert_pem);
  r.issued_at = std::chrono::duration_cast<Seconds>(cert->issued_at.time_since_epoch()).count();
  return r;
}

Result<std::string> CaService::handleFrame(std::string_view payload) {
  OC_ASSIGN_OR_RETURN(CsrRequest request, decodeCsrRequest(payload));
  return encodeCsrResponse(handle(request));
}

CaChannel::CaChannel(EventLoop& loop, CaService& service, int fd, std::function<void(const std::string&)> on_closed,
                     Options options)
    : loop_(loop),
      service_(service),
      fd_(fd),
      on_closed_(std::move(on_closed)),
      options_(options),
      tokens_(options.burst),
      refilled_(std::chrono::steady_clock::now()) {}

CaChannel::~CaChannel() {
  if (fd_ < 0) return;
  if (!closed_) loop_.unwatchFd(fd_);
  ::close(fd_);
}

Status CaChannel::start() {
  int flags = ::fcntl(fd_, F_GETFL);
  if (flags < 0 || ::fcntl(fd_, F_SETFL, flags | O_NONBLOCK) != 0) return errnoError("CA channel: O_NONBLOCK");
  return loop_.watchFd(fd_, EPOLLIN, [this](uint32_t) { onReadable(); });
}

bool CaChannel::admit() {
  auto now = std::chrono::steady_clock::now();
  tokens_ =
      std::min(options_.burst, tokens_ + std::chrono::duration<double>(now - refilled_).count() * options_.per_second);
  refilled_ = now;
  if (tokens_ < 1) return false;
  tokens_ -= 1;
  return true;
}

void CaChannel::onReadable() {
  if (closed_) return;
  char buf[4096];
  size_t want = std::min(sizeof buf, reader_.room());
  if (want > 0) {
    ssize_t n = ::recv(fd_, buf, want, MSG_DONTWAIT);
    if (n == 0) return close("the worker closed the channel");
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) return;
      return close(std::string("read: ") + std::strerror(errno));
    }
    reader_.append(buf, static_cast<size_t>(n));
  }
  // Every whole frame in the buffer (a bounded number: the buffer holds at
  // most one maximal frame); the rest of the socket's bytes next turn.
  while (!closed_) {
    auto frame = reader_.next();
    if (!frame.ok()) {
      send(encodeCsrResponse(refuse(0, frame.error().message)));
      return close(frame.error().message);
    }
    if (!*frame) return;
    ++requests_;
    auto request = decodeCsrRequest(**frame);
    if (!request.ok()) {
      send(encodeCsrResponse(refuse(0, request.error().message)));
      return close(request.error().message);
    }
    if (!admit()) {
      send(encodeCsrResponse(refuse(request->id, "too many certificate requests; retry later")));
      continue;
    }
    send(encodeCsrResponse(service_.handle(*request)));
  }
}

void CaChannel::send(const std::string& frame) {
  if (closed_) return;
  // An answer is a few KiB and the worker reads it at once; one that does
  // not fit in the socket's buffer belongs to a worker that stopped reading.
  ssize_t n = ::send(fd_, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  if (n != static_cast<ssize_t>(frame.size())) close("the worker does not read its answers");
}

void CaChannel::close(const std::string& why) {
  if (closed_) return;
  closed_ = true;
  loop_.unwatchFd(fd_);
  ::shutdown(fd_, SHUT_RDWR);
  spdlog::warn("mesh CA channel closed: {}", why);
  loop_.post([cb = on_closed_, why] {
    if (cb) cb(why);
  });
}

}  // namespace offcore::mesh::tls
