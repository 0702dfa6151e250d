// QmpClient: the QEMU Machine Protocol (JSON lines over a unix socket), as
// the SoC uses it to drive a VM it launched: power-down, status, migration.
//
// Blocking, with a deadline on every call; one owner thread. Events that
// arrive while waiting for a reply are kept (events()) so a caller can wait
// for SHUTDOWN or MIGRATION without losing one. A line longer than
// kMaxLineBytes, or one that is not a JSON object, ends the session with an
// error: QEMU is a child we started, but its socket is still input.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>

#include "base/result.h"

namespace offcore::virt {

class QmpClient {
 public:
  static constexpr size_t kMaxLineBytes = 1 << 20;

  // Connects, reads the greeting and leaves capabilities negotiation mode.
  static Result<std::unique_ptr<QmpClient>> connect(const std::string& socket_path, std::chrono::milliseconds timeout);
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  // Runs one command; the "return" member, or QEMU's error as an Error
  // ("<class>: <desc>").
  Result<nlohmann::json> execute(const std::string& command, const nlohmann::json& arguments = nullptr,
                                 std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Waits for an event by name (one already received counts) and removes it
  // from the queue; returns its "data" member.
  Result<nlohmann::json> waitEvent(const std::string& name, std::chrono::milliseconds timeout);

  const std::deque<nlohmann::json>& events() const { return events_; }

 private:
  explicit QmpClient(int fd) : fd_(fd) {}
  // The next JSON object from the socket, within deadline.
  Result<nlohmann::json> readMessage(std::chrono::steady_clock::time_point deadline);
  Status sendLine(const std::string& line);
  void keepEvent(nlohmann::json event);

  int fd_ = -1;
  std::string buffer_;
  std::deque<nlohmann::json> events_;
  uint64_t next_id_ = 1;
};

}  // namespace offcore::virt
