// Exchange's HTTP/1.1 upstream side (private to exchange*.cc): the current
// attempt's pooled connection, its response parser and request framing.
#pragma once

#include "mesh/l7/exchange.h"

namespace offcore::mesh::l7 {

// The upstream side of the current attempt.
struct Exchange::Upstream : Transport::Callbacks, http::Http1Parser::Callbacks {
  Upstream(Exchange* exchange, uint64_t id) : x(exchange), attempt(id) {}
  Exchange* x;  // nullptr once released
  uint64_t attempt;
  std::unique_ptr<UpstreamConn> conn;
  http::Http1Parser parser{http::Http1Parser::Kind::kResponse, this};
  bool informational = false;
  bool complete = false;
  bool sending = false;    // the head went out; body bytes follow
  bool chunked = false;    // the body goes chunked (its length is not known yet)
  bool body_done = false;  // the whole request is out (the connection may be reused)

  void onData(std::string_view bytes) override {
    if (x) parser.feed(bytes);
  }
  void onDrained() override {
    if (x) x->pumpBody();
  }
  void onEnd() override {
    if (!x) return;
    parser.finish();  // ends a read-until-close body
    if (x && !complete) x->attemptFailed({route::AttemptOutcome::Kind::kReset, 0}, "upstream closed early");
  }
  void onClosed(const Status& why) override {
    if (x && !complete)
      x->attemptFailed({route::AttemptOutcome::Kind::kReset, 0},
                       why.ok() ? "upstream closed" : "upstream: " + why.error().message);
  }
  void onHead(http::MessageHead&& head) override {
    if (x) x->onUpstreamHead(std::move(head));
  }
  void onBody(std::string_view bytes) override {
    if (x) x->onUpstreamBody(bytes);
  }
  void onTrailers(http::Headers&& trailers) override {
    if (x) x->onUpstreamTrailers(trailers);
  }
  void onComplete() override {
    if (x) x->onUpstreamComplete();
  }
  void onError(int, const std::string& why) override {
    if (x) x->attemptFailed({route::AttemptOutcome::Kind::kReset, 0}, "bad response from upstream: " + why);
  }
};

}  // namespace offcore::mesh::l7
