// Test helpers for mesh unit tests: drive an EventLoop until a condition
// holds, and a Transport::Callbacks that records what happened.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include "base/event_loop.h"
#include "mesh/transport.h"

namespace offcore::mesh::testing {

// Runs `loop` until `done()` is true or `limit` passes; returns done().
inline bool runUntil(EventLoop& loop, const std::function<bool()>& done,
                     std::chrono::milliseconds limit = std::chrono::milliseconds(5000)) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  std::function<void()> check;
  EventLoop::TimerId id = 0;
  check = [&] {
    if (done() || std::chrono::steady_clock::now() >= deadline) {
      id = 0;
      loop.stop();
      return;
    }
    id = loop.addTimer(std::chrono::milliseconds(1), check);
  };
  id = loop.addTimer(std::chrono::milliseconds(0), check);
  (void)loop.run();
  if (id != 0) loop.cancelTimer(id);
  return done();
}

struct Recorder : Transport::Callbacks {
  std::string data;
  bool ended = false;
  bool closed = false;
  bool close_ok = false;
  std::string close_error;
  int drained = 0;
  std::function<void(std::string_view)> on_data;
  void onData(std::string_view bytes) override {
    data.append(bytes);
    if (on_data) on_data(bytes);
  }
  void onEnd() override { ended = true; }
  void onClosed(const Status& why) override {
    closed = true;
    close_ok = why.ok();
    if (!why.ok()) close_error = why.error().message;
  }
  void onDrained() override { ++drained; }
};

}  // namespace offcore::mesh::testing
