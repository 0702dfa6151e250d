// Pump: L4 passthrough between two Transports (downstream client and its
// upstream), for any protocol. Bytes flow both ways with backpressure (a
// side whose peer has more than kHighWater unsent stops being read until
// the peer drains), half-closes are passed on, and a reset on one side
// resets the other. Owned by the proxy's loop; done() runs once, when both
// sides are closed, with the byte counts; it must not destroy the Pump
// inline (post that to the loop).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "base/result.h"
#include "mesh/transport.h"

namespace offcore::mesh {

struct PumpStats {
  uint64_t bytes_up = 0;    // downstream -> upstream
  uint64_t bytes_down = 0;  // upstream -> downstream
  bool reset = false;       // ended by a reset or an error rather than two FINs
  std::string error;
};

class Pump {
 public:
  static constexpr size_t kHighWater = 1 << 20;
  using Done = std::function<void(const PumpStats&)>;

  Pump(std::unique_ptr<Transport> downstream, std::unique_ptr<Transport> upstream, Done done);
  ~Pump();
  Pump(const Pump&) = delete;
  Pump& operator=(const Pump&) = delete;

  // Reset both sides now (drain deadline passed, proxy shutting down).
  void abort();
  const PumpStats& stats() const { return stats_; }

 private:
  class Side : public Transport::Callbacks {
   public:
    Side(Pump& pump, bool is_down) : pump_(pump), is_down_(is_down) {}
    void onData(std::string_view bytes) override;
    void onEnd() override;
    void onClosed(const Status& why) override;
    void onDrained() override;

   private:
    Pump& pump_;
    bool is_down_;
  };

  Transport& peerOf(bool is_down) { return is_down ? *up_ : *down_; }
  Transport& selfOf(bool is_down) { return is_down ? *down_ : *up_; }
  void closed(bool is_down, const Status& why);
  void resetSide(bool is_down);
  void maybeFinish();

  std::unique_ptr<Transport> down_, up_;
  Side down_side_{*this, true}, up_side_{*this, false};
  Done done_;
  PumpStats stats_;
  bool down_closed_ = false, up_closed_ = false, finished_ = false;
};

}  // namespace offcore::mesh
