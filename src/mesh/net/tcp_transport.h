// TCP pieces of the proxy: TcpTransport (one connected non-blocking socket
// on an EventLoop), TcpConnector (plain, optionally transparent, upstream
// connects) and TcpListener (accepts, optionally IP_TRANSPARENT for TPROXY,
// SO_REUSEPORT, or adopted from a passed fd for hot restart).
//
// All three live on one loop and are touched only from its thread.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/event_loop.h"
#include "mesh/transport.h"

namespace offcore::mesh {

// Write-buffer bounds: above high, callers should stop producing; onDrained
// fires once the buffer is back below low.
struct TcpWatermarks {
  size_t high = 1 << 20;   // 1 MiB
  size_t low = 256 << 10;  // 256 KiB
};

class TcpTransport : public Transport {
 public:
  // Takes ownership of a connected socket (made non-blocking here).
  static std::unique_ptr<TcpTransport> adopt(EventLoop& loop, int fd, TcpWatermarks marks = {});
  ~TcpTransport() override;  // closes the socket (FIN) if still open

  void setCallbacks(Callbacks* callbacks) override;
  void write(std::string_view bytes) override;
  size_t pendingWrite() const override { return out_.size() - out_off_; }
  void pauseReading(bool paused) override;
  void endWrite() override;
  // Sends RST (SO_LINGER 0) and closes now. onClosed is not called for a
  // reset the owner asked for.
  void reset() override;
  std::string localAddress() const override { return local_; }
  std::string remoteAddress() const override { return remote_; }

  int fd() const { return fd_; }

 private:
  TcpTransport(EventLoop& loop, int fd, TcpWatermarks marks);
  void onEvents(uint32_t events);
  void readSome();
  void flush();
  void sendNow();  // one best-effort send of what is queued (close, reset)
  void updateInterest();
  // Closes the socket and reports `why` (from the loop, never from inside a
  // caller's write/endWrite).
  void finish(const Status& why, bool deferred);
  void maybeFinish();

  EventLoop& loop_;
  int fd_;
  TcpWatermarks marks_;
  Callbacks* callbacks_ = nullptr;
  std::string out_;
  size_t out_off_ = 0;
  std::string local_, remote_;
  uint32_t interest_ = 0;
  bool paused_ = false;
  bool read_eof_ = false;
  bool end_requested_ = false;
  bool write_shut_ = false;
  bool above_high_ = false;
  bool closed_ = false;
  bool flush_posted_ = false;  // writes of this loop turn wait for one send at its end
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

// Upstream TCP connects. A target with node_ip (a remote mesh pod) is an
// error here: that needs the HBONE connector.
class TcpConnector : public Connector {
 public:
  explicit TcpConnector(EventLoop& loop, TcpWatermarks marks = {}) : loop_(loop), marks_(marks) {}
  ~TcpConnector() override;  // abandons attempts in flight (their done never runs)

  // source_ip set: IP_TRANSPARENT + bind to it first (needs CAP_NET_ADMIN
  // and a route for the reply). done runs later on the loop, exactly once.
  void connect(const ConnectTarget& target, Millis timeout, Done done) override;
  size_t inFlight() const { return pending_.size(); }

 private:
  struct Pending {
    int fd = -1;
    EventLoop::TimerId timer = 0;
    Done done;
    std::string where;
  };
  void complete(uint64_t id, Result<std::unique_ptr<Transport>> result);
  void onWritable(uint64_t id);

  EventLoop& loop_;
  TcpWatermarks marks_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, Pending> pending_;
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

struct TcpListenOptions {
  bool transparent = false;  // IP_TRANSPARENT (TPROXY targets)
  bool reuse_port = false;   // SO_REUSEPORT (a second process may bind too)
  int backlog = 1024;
};

class TcpListener {
 public:
  using OnAccept = std::function<void(std::unique_ptr<Transport>)>;

  // Binds ip:port (port 0 = any; see port()) and starts accepting.
  static Result<std::unique_ptr<TcpListener>> listen(EventLoop& loop, const std::string& ip, uint16_t port,
                                                     TcpListenOptions options, OnAccept on_accept,
                                                     TcpWatermarks marks = {});
  // Adopts an already bound and listening socket (hot restart fd passing).
  static Result<std::unique_ptr<TcpListener>> fromFd(EventLoop& loop, int fd, OnAccept on_accept,
                                                     TcpWatermarks marks = {});
  ~TcpListener();

  uint16_t port() const { return port_; }
  // The listening socket, e.g. to pass to a successor with SCM_RIGHTS.
  int fd() const { return fd_; }
  // Stop accepting (the socket stays open, queued connections wait).
  void pause(bool paused);

 private:
  TcpListener(EventLoop& loop, int fd, OnAccept on_accept, TcpWatermarks marks);
  Status start();
  void acceptSome();

  EventLoop& loop_;
  int fd_;
  uint16_t port_ = 0;
  OnAccept on_accept_;
  TcpWatermarks marks_;
  bool paused_ = false;
  EventLoop::TimerId retry_timer_ = 0;
};

// "ip:port" / "[ip6]:port" of a socket's local or peer address; "" on error.
std::string socketAddress(int fd, bool peer);

}  // namespace offcore::mesh
