// An HTTP/2 (h2c) listener for the proxy fixture: every connection it
// accepts becomes an Http2Session of the fixture's proxy context, so a real
// HTTP/2 client (nghttp) can talk to the proxy.
#pragma once

#include <map>
#include <memory>

#include "mesh/l7/http2_session.h"
#include "proxy_fixture.h"

namespace offcore::mesh::l7::testing {

struct H2Downstream {
  // Members in this order: sessions go before the listener that made them.
  std::unique_ptr<TcpListener> listener;
  std::map<Http2Session*, std::unique_ptr<Http2Session>> sessions;

  // loop, ctx and info must outlive this object (the fixture's members).
  // ctx is read at each accept: a test may replace the context after
  // SetUp (other options), and new sessions must get the new one.
  Status start(EventLoop& loop, std::unique_ptr<HttpProxyContext>& ctx, const SessionInfo& info) {
    auto l = TcpListener::listen(loop, "127.0.0.1", 0, {}, [this, &loop, &ctx, &info](std::unique_ptr<Transport> t) {
      auto s = std::make_unique<Http2Session>(*ctx, std::move(t), info, [this, &loop](Http2Session* done) {
        loop.post([this, done] { sessions.erase(done); });
      });
      Http2Session* raw = s.get();
      sessions[raw] = std::move(s);
    });
    if (!l.ok()) return l.error();
    listener = std::move(*l);
    return okStatus();
  }
  uint16_t port() const { return listener->port(); }
};

}  // namespace offcore::mesh::l7::testing
