#include "mesh/l7/http_proxy.h"

#include "mesh/l7/exchange.h"
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
      h2_pool_(loop, options_.idle_timeout),
      now_([] { return std::chrono::steady_clock::now(); }) {}

void HttpProxyContext::log(const RequestRecord& r) {
  stats_.record(r);
  if (access_log_) access_log_(r);
}

// Writes an exchange's response as HTTP/1.1.
class HttpSession::Sink : public Exchange::Sink {
 public:
  explicit Sink(HttpSession* s) : s_(s) {}
  void onResponseHead(MessageHead& head, bool no_body) override {
    if (no_body) head.until_close = head.chunked = false;
    // Answered before the request body is all here: the rest of it is read
    // and dropped, and the connection closes after this response.
    if (s_->parser_.inMessage()) s_->closing_ = true;
    bool unframed = head.chunked || head.until_close;
    // HTTP/1.0 clients know no chunked encoding: the body ends with the connection.
    bool http10 = s_->ex_ && s_->ex_->head().version_minor == 0;
    if (unframed && http10) s_->closing_ = true;
    s_->chunked_ = unframed && !http10;
    http::Headers extra;
    if (s_->closing_) extra.emplace_back("connection", "close");
    if (s_->down_) s_->down_->write(http::serializeResponseHead(head, extra, http10));
  }
  void onResponseBody(std::string_view bytes) override {
    if (!s_->down_ || bytes.empty()) return;
    s_->down_->write(s_->chunked_ ? http::encodeChunk(bytes) : std::string(bytes));
  }
  // HTTP/1.1 carries trailers only after a chunked body; otherwise they are dropped.
  void onResponseTrailers(const http::Headers& trailers) override {
    for (const auto& [k, v] : trailers) trailers_ += k + ": " + v + "\r\n";
  }
  void onResponseEnd() override {
    if (s_->chunked_ && s_->down_)
      s_->down_->write(trailers_.empty() ? std::string(http::lastChunk()) : "0\r\n" + trailers_ + "\r\n");
    trailers_.clear();
  }
  void onResponseAbort() override { s_->closeDownstream(true); }
  void onExchangeDone(Exchange* x) override { s_->exchangeDone(x); }
  size_t responseBacklog() const override { return s_->down_ ? s_->down_->pendingWrite() : 0; }
  void onRequestDrained() override {
    if (s_->down_) s_->down_->pauseReading(false);
  }

 private:
  HttpSession* s_;
  std::string trailers_;
};

HttpSession::HttpSession(HttpProxyContext& ctx, std::unique_ptr<Transport> downstream, SessionInfo info,
                         std::function<void(HttpSession*)> on_done, std::string_view already_read)
    : ctx_(ctx),
      down_(std::move(downstream)),
      info_(std::move(info)),
      on_done_(std::move(on_done)),
      parser_(http::Http1Parser::Kind::kRequest, this),
      sink_(std::make_unique<Sink>(this)) {
  if (info_.source_namespace.empty()) info_.source_namespace = route::namespaceOf(info_.source_identity);
  down_->setCallbacks(this);
  armIdle();
  if (!already_read.empty()) onData(already_read);
}

HttpSession::~HttpSession() {
  *alive_ = false;
  if (linger_timer_) ctx_.loop().cancelTimer(linger_timer_);
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_);
  ex_.reset();  // the exchange may not call back any more: we are going
  if (down_) down_->setCallbacks(nullptr);
}

void HttpSession::armIdle() {
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_);
  idle_timer_ = ctx_.loop().addTimer(ctx_.options().downstream_idle_timeout, [this] {
    idle_timer_ = 0;
    if (!ex_) closeDownstream(true);
  });
}

void HttpSession::onData(std::string_view bytes) {
  if (closing_ && !ex_) return;  // after an error answer: ignore the rest
  parser_.feed(bytes);
  // Pipelined requests wait in the parser; do not let them pile up.
  if (parser_.buffered() > ctx_.options().request_buffer_limit && down_) down_->pauseReading(true);
}

void HttpSession::onEnd() {
  down_ended_ = true;
  if (parser_.inMessage()) {
    // The client stopped mid-body: a request in flight fails (400, or an
    // aborted response); one answered already just closes.
    if (ex_) return parser_.finish();
    return closeDownstream(false);
  }
  if (ex_ || (parser_.paused() && parser_.buffered() > 0)) return;  // exchangeDone goes on from there
  parser_.finish();
  if (!ex_ && !finished_) closeDownstream(false);
}

void HttpSession::onClosed(const Status&) {
  down_->setCallbacks(nullptr);
  destroyLater(ctx_.loop(), std::move(down_));
  if (ex_) ex_->cancel();
  done();
}

void HttpSession::onDrained() {
  if (!ex_) return;
  ex_->touch();  // response bytes reached the client: the stream is not idle
  ex_->resumeUpstream();
}

void HttpSession::onHead(MessageHead&& head) {
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_), idle_timer_ = 0;
  ex_ = std::make_unique<Exchange>(ctx_, info_, sink_.get());
  if (!head.keep_alive) closing_ = true;
  if (const std::string* e = http::findHeader(head.headers, "expect")) {
    // The body is read before an upstream is chosen: ask the client for it.
    if (*e == "100-continue" || *e == "100-Continue") down_->write("HTTP/1.1 100 Continue\r\n\r\n");
    http::removeHeader(head.headers, "expect");
  }
  bool body = head.hasBody();
  trailers_.clear();
  ex_->begin(std::move(head));
  // With a body, the request goes upstream now and the body streams behind
  // it; without, at onComplete (a local answer then keeps the connection).
  if (body) ex_->dispatch();
}

void HttpSession::onBody(std::string_view bytes) {
  if (!ex_) return;  // answered already: dropped
  ex_->addBody(bytes);
  if (ex_ && ex_->requestPaused() && down_) down_->pauseReading(true);
}

void HttpSession::onTrailers(http::Headers&& trailers) { trailers_ = std::move(trailers); }

void HttpSession::onComplete() {
  if (ex_) ex_->endBody(std::move(trailers_));
  if (ex_) ex_->dispatch();
}

void HttpSession::onError(int status, const std::string& why) {
  closing_ = true;
  if (!ex_) ex_ = std::make_unique<Exchange>(ctx_, info_, sink_.get());
  ex_->respondLocal(status, why + "\n", "DPE");
}

void HttpSession::exchangeDone(Exchange* x) {
  if (ex_.get() != x) return;
  destroyLater(ctx_.loop(), std::move(ex_));
  ++served_;
  if (finished_ || !down_) return;
  if (closing_ || (down_ended_ && parser_.buffered() == 0)) {
    down_->pauseReading(false);  // the rest of an unfinished request is read and dropped
    closeDownstream(false);
    return;
  }
  armIdle();
  down_->pauseReading(false);
  // The next pipelined request, from the loop (no recursion through
  // requests answered at once).
  std::weak_ptr<bool> weak = alive_;
  ctx_.loop().post([this, weak] {
    auto a = weak.lock();
    if (!a || !*a || ex_ || finished_) return;
    parser_.resume();
    if (!ex_ && down_ended_ && !finished_) {
      parser_.finish();
      if (!ex_) closeDownstream(false);
    }
  });
}

void HttpSession::closeDownstream(bool reset) {
  if (!down_ || reset) {
    if (down_) down_->reset();
    done();  // first: the cancelled exchange's callback finds the session over
    if (ex_) ex_->cancel();
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
  if (idle_timer_) ctx_.loop().cancelTimer(idle_timer_), idle_timer_ = 0;
  if (on_done_) on_done_(this);
}

}  // namespace offcore::mesh::l7
