#include "mesh/l7/http_proxy.h"

#include "mesh/l7/session_parts.h"
#include "mesh/route/policy.h"

namespace offcore::mesh::l7 {

using http::MessageHead;

HttpProxyContext::HttpProxyContext(EventLoop& loop, Connector& connector, MetricsRegistry& metrics,
                                   route::Random& random, HttpProxyOptions options)
    : loop_(loop),
      connector_(connector),
      stats_(metrics),
      random_(random),
      options_(std::move(options)),
      pool_(loop, options_.idle_timeout),
      now_([] { return std::chrono::steady_clock::now(); }) {}

void HttpProxyContext::log(const RequestRecord& r) {
  stats_.record(r);
  if (access_log_) access_log_(r);
}

HttpSession::HttpSession(HttpProxyContext& ctx, std::unique_ptr<Transport> downstream, SessionInfo info,
                         std::function<void(HttpSession*)> on_done)
    : ctx_(ctx),
      down_(std::move(downstream)),
      info_(std::move(info)),
      on_done_(std::move(on_done)),
      parser_(http::Http1Parser::Kind::kRequest, this) {
  if (info_.source_namespace.empty()) info_.source_namespace = route::namespaceOf(info_.source_identity);
  down_->setCallbacks(this);
}

HttpSession::~HttpSession() {
  *alive_ = false;
  cancelTimers();
  if (linger_timer_) ctx_.loop().cancelTimer(linger_timer_);
  if (req_) releaseRuntime();
  releaseUpstream(false);
  if (down_) down_->setCallbacks(nullptr);
}

void HttpSession::onData(std::string_view bytes) {
  if (closing_ && !req_) return;  // after an error answer: ignore the rest
  parser_.feed(bytes);
  // Pipelined requests wait in the parser; do not let them pile up.
  if (parser_.buffered() > ctx_.options().max_request_body && down_) down_->pauseReading(true);
}

void HttpSession::onEnd() {
  down_ended_ = true;
  if (req_ || (parser_.paused() && parser_.buffered() > 0)) return;  // finishRequest goes on from there
  parser_.finish();
  if (!req_ && !finished_) closeDownstream(false);
}

void HttpSession::onClosed(const Status&) {
  down_->setCallbacks(nullptr);
  destroyLater(ctx_.loop(), std::move(down_));
  if (req_) {
    req_->rec.flags = req_->rec.flags.empty() ? "DC" : req_->rec.flags;  // downstream went away
    finishRequest(req_->rec.status);
  }
  done();
}

void HttpSession::onDrained() {
  if (up_ && up_->conn) up_->conn->transport().pauseReading(false);
}

void HttpSession::onHead(MessageHead&& head) {
  req_ = std::make_unique<Request>();
  req_->start = ctx_.now();
  req_->rec.start = std::chrono::system_clock::now();
  req_->rec.method = head.method;
  req_->rec.path = head.path;
  req_->rec.source_workload = info_.source_workload;
  if (const std::string* h = http::findHeader(head.headers, "host")) req_->rec.authority = *h;
  if (!head.keep_alive) closing_ = true;
  if (const std::string* e = http::findHeader(head.headers, "expect")) {
    // We buffer the body before choosing an upstream: tell the client to send it.
    if (*e == "100-continue" || *e == "100-Continue") down_->write("HTTP/1.1 100 Continue\r\n\r\n");
    http::removeHeader(head.headers, "expect");
  }
  req_->head = std::move(head);
}

void HttpSession::onBody(std::string_view bytes) {
  if (!req_) return;
  req_->rec.request_bytes += bytes.size();
  if (req_->too_large) return;
  if (req_->body.size() + bytes.size() > ctx_.options().max_request_body) {
    req_->too_large = true;
    req_->body.clear();
    req_->body.shrink_to_fit();
    return;
  }
  req_->body.append(bytes);
}

void HttpSession::onComplete() {
  if (!req_) return;
  if (req_->too_large) {
    closing_ = true;
    respondLocal(413, "request body larger than " + std::to_string(ctx_.options().max_request_body) + " bytes\n",
                 "DPE");
    return;
  }
  dispatch();
}

void HttpSession::onError(int status, const std::string& why) {
  closing_ = true;
  if (!req_) {
    req_ = std::make_unique<Request>();
    req_->start = ctx_.now();
    req_->rec.start = std::chrono::system_clock::now();
    req_->rec.source_workload = info_.source_workload;
  }
  respondLocal(status, why + "\n", "DPE");
}

void HttpSession::respondLocal(int status, const std::string& body, const std::string& flag,
                               const http::Headers& extra) {
  if (!req_) return;
  releaseUpstream(false);
  req_->rec.flags = flag;
  if (req_->response_started) {
    closeDownstream(true);
    finishRequest(status);
    return;
  }
  req_->response_started = true;
  if (down_) down_->write(http::simpleResponse(status, body, extra, closing_));
  finishRequest(status);
}

void HttpSession::finishRequest(int status) {
  if (!req_) return;
  releaseUpstream(false);
  std::unique_ptr<Request> r = std::move(req_);
  cancelTimers(r.get());
  releaseRuntime(r.get());
  r->rec.status = status;
  r->rec.duration_ms = std::chrono::duration<double, std::milli>(ctx_.now() - r->start).count();
  ctx_.log(r->rec);
  ++served_;
  if (!down_) return;
  if (closing_ || (down_ended_ && parser_.buffered() == 0)) {
    closeDownstream(false);
    return;
  }
  down_->pauseReading(false);
  // The next pipelined request, from the loop (no recursion through
  // requests answered at once).
  std::weak_ptr<bool> weak = alive_;
  ctx_.loop().post([this, weak] {
    auto a = weak.lock();
    if (!a || !*a || req_ || finished_) return;
    parser_.resume();
    if (!req_ && down_ended_ && !finished_) {
      parser_.finish();
      if (!req_) closeDownstream(false);
    }
  });
}

void HttpSession::closeDownstream(bool reset) {
  if (!down_) {
    done();
    return;
  }
  if (reset) {
    down_->reset();
    done();
    return;
  }
  down_->endWrite();
  // A client that never closes its side gets a RST after a grace period.
  if (linger_timer_ == 0) {
    linger_timer_ = ctx_.loop().addTimer(std::chrono::seconds(10), [this] {
      linger_timer_ = 0;
      if (down_) down_->reset();
      done();
    });
  }
}

void HttpSession::done() {
  if (finished_) return;
  finished_ = true;
  cancelTimers();
  if (on_done_) on_done_(this);
}

}  // namespace offcore::mesh::l7
