// H2Conn: one mTLS HTTP/2 connection between two node proxies (HBONE), on
// one EventLoop. The client side opens CONNECT streams; the server side
// hands each accepted CONNECT to a handler. Streams are HboneStreams
// (Transport); flow control is HTTP/2's: received bytes are acknowledged
// (WINDOW_UPDATE) only once the stream's owner took them, so a paused
// reader stops its peer after one window.
//
// Lifetime: shared. The pool (connector) or the server holds one
// reference, every stream another; a closed connection lingers, inert,
// until the last stream using it is gone.
#pragma once

#include <nghttp2/nghttp2.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "base/event_loop.h"
#include "base/result.h"
#include "mesh/tls/tls_context.h"
#include "mesh/transport.h"

namespace offcore::mesh::hbone {

class HboneStream;

struct TunnelRequest {
  std::string target_ip;
  uint16_t target_port = 0;
  std::string source_ip;       // "forwarded: for=<ip>"; "" when absent
  std::string peer_identity;   // the client proxy's SPIFFE ID (mTLS-verified)
  std::string local_identity;  // the identity this server presented (asked for in SNI)
};

struct H2Options {
  uint32_t max_concurrent_streams = 1000;  // what a server accepts per connection
  int32_t stream_window = 1 << 20;         // receive window per stream
  int32_t connection_window = 16 << 20;    // receive window per connection
  std::chrono::milliseconds handshake_timeout{5000};
  std::chrono::milliseconds idle_timeout{60000};  // no stream for this long: closed
  size_t write_high_watermark = 1 << 20;          // per stream: above it, wait for onDrained
  size_t write_low_watermark = 256 << 10;
};

class H2Conn : public std::enable_shared_from_this<H2Conn> {
 public:
  enum class Role { kClient, kServer };
  // Server: Status error -> 403 (code EACCES/EPERM) or 503; the handler
  // drops the stream then. OK -> 200 and the handler owns the stream.
  using RequestHandler = std::function<Status(TunnelRequest, std::unique_ptr<Transport>)>;
  using OpenDone = std::function<void(Result<std::unique_ptr<Transport>>)>;

  H2Conn(EventLoop& loop, int fd, std::unique_ptr<tls::TlsSession> tls, Role role, H2Options options,
         std::string peer_addr);
  ~H2Conn();
  H2Conn(const H2Conn&) = delete;
  H2Conn& operator=(const H2Conn&) = delete;

  // Watches the socket; `connecting`: a non-blocking connect() is underway.
  Status start(bool connecting);
  // Runs once, posted to the loop, when the connection is gone.
  void setOnClosed(std::function<void(const Status&)> on_closed) { on_closed_ = std::move(on_closed); }
  void setRequestHandler(RequestHandler handler) { handler_ = std::move(handler); }

  // Client: a CONNECT stream to `authority` ("ip:port"); `done` runs once
  // the peer answered (or failed). Returns a handle for cancelOpen.
  uint64_t open(const std::string& authority, const std::string& forwarded_for, OpenDone done);
  // Forgets an open whose caller gave up (done is not called).
  void cancelOpen(uint64_t handle);

  // False once closing, or when the peer refuses new streams (GOAWAY).
  bool usable() const;
  bool closed() const { return closed_; }
  void close(const Status& why);
  size_t streamCount() const { return streams_.size(); }
  const std::string& peerAddr() const { return peer_addr_; }
  const std::string& localAddr() const { return local_addr_; }
  const std::string& peerIdentity() const { return tls_->peerIdentity(); }
  const std::string& peerSerial() const { return tls_->peerSerial(); }

  // For HboneStream.
  nghttp2_session* session() const { return session_; }
  void kick();  // flush soon
  void consume(int32_t stream_id, size_t n);
  void detach(HboneStream* stream, bool reset);
  void resetStream(int32_t stream_id);
  void noteDrained(int32_t stream_id) { drained_.push_back(stream_id); }
  EventLoop& loop() { return loop_; }
  const H2Options& options() const { return options_; }

  // nghttp2 callbacks (static trampolines in h2_conn.cc call these).
  int onBeginHeaders(const nghttp2_frame* frame);
  int onHeader(const nghttp2_frame* frame, std::string_view name, std::string_view value);
  int onFrameRecv(const nghttp2_frame* frame);
  int onDataChunk(int32_t stream_id, const uint8_t* data, size_t len);
  int onStreamClose(int32_t stream_id, uint32_t error_code);

 private:
  enum class State { kConnecting, kHandshake, kOpen, kClosed };
  struct Open {
    std::string authority;
    std::string forwarded_for;
    OpenDone done;
    int32_t stream_id = -1;
    std::unique_ptr<HboneStream> stream;
    std::string status;
    int refused = 0;  // REFUSED_STREAM answers so far (retried: the peer did not process it)
  };
  struct Incoming {
    std::string method, authority, forwarded;
  };

  void onEvents(uint32_t events);
  void doHandshake();
  Status setupSession();
  void submitOpen(uint64_t handle, Open& open);
  void submitQueuedOpens();
  void readSome();
  void flush();
  void updateInterest();
  void armIdle();
  void handleConnect(int32_t stream_id);
  void handleResponse(int32_t stream_id);
  void answer(int32_t stream_id, int status, bool with_body);
  HboneStream* stream(int32_t id);

  EventLoop& loop_;
  int fd_;
  std::unique_ptr<tls::TlsSession> tls_;
  Role role_;
  H2Options options_;
  std::string peer_addr_;
  std::string local_addr_;
  State state_ = State::kConnecting;
  bool closed_ = false;
  nghttp2_session* session_ = nullptr;
  std::string out_;
  size_t out_off_ = 0;
  uint32_t interest_ = 0;
  bool kick_posted_ = false;
  // Client: opens wait for the peer's SETTINGS (its stream limit), so the
  // first burst does not overrun max_concurrent_streams.
  bool peer_settings_ = false;
  EventLoop::TimerId handshake_timer_ = 0;
  EventLoop::TimerId idle_timer_ = 0;
  std::function<void(const Status&)> on_closed_;
  RequestHandler handler_;
  std::unordered_map<int32_t, HboneStream*> streams_;
  std::map<uint64_t, Open> opens_;
  std::unordered_map<int32_t, uint64_t> open_by_stream_;
  std::unordered_map<int32_t, Incoming> incoming_;
  std::vector<int32_t> drained_;
  uint64_t next_open_ = 1;
};

}  // namespace offcore::mesh::hbone
