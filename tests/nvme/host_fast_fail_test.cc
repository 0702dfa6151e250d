// The initiator's bounds once the association is lost (Linux's
// fast_io_fail_tmo and ctrl_loss_tmo): against the real target, stopped and
// started again on the same port.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "nvme/host/host.h"
#include "target_fixture.h"

namespace offcore::nvme {
namespace {

using namespace std::chrono_literals;
using test::kHostnqn;
using test::kSubnqn;
using test::TargetTest;
using Clock = std::chrono::steady_clock;

HostOptions lossOptions() {
  HostOptions o;
  o.host_nqn = kHostnqn;
  o.io_timeout = 20s;
  o.kato_ms = 1000;
  o.connect_timeout = 500ms;
  return o;
}

// Polls up to `limit` for the host to reach `want`.
bool waitForState(NvmeTcpHost& h, HostState want, std::chrono::milliseconds limit) {
  auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (h.state() == want) return true;
    std::this_thread::sleep_for(20ms);
  }
  return h.state() == want;
}

TEST_F(TargetTest, FastIoFailFailsNewIoAtOnceUntilTheTargetReturns) {
  HostOptions o = lossOptions();
  o.fast_io_fail = 500ms;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  EXPECT_EQ((*host)->state(), HostState::kLive);
  std::vector<uint8_t> buf(4096, 0x5a);

  std::thread restarter = restartTargetAfter(6s);  // stops it now
  auto t0 = Clock::now();
  auto first = (*host)->write(0, buf.data(), buf.size());
  auto first_took = Clock::now() - t0;
  ASSERT_FALSE(first.ok());
  EXPECT_EQ(first.error().code, kBlockIo) << first.error().message;
  EXPECT_LT(first_took, 3s) << "the first write waited for io_timeout, not fast_io_fail";
  EXPECT_EQ((*host)->state(), HostState::kReconnecting);

  t0 = Clock::now();
  auto second = (*host)->write(4096, buf.data(), buf.size());
  EXPECT_FALSE(second.ok());
  EXPECT_LT(Clock::now() - t0, 100ms) << "new I/O on a known-lost path must fail at once";
  EXPECT_GE((*host)->stats().fast_failed, 2u);

  restarter.join();
  ASSERT_TRUE(waitForState(**host, HostState::kLive, 10s)) << "no reconnect after the target returned";
  auto third = (*host)->write(0, buf.data(), buf.size());
  EXPECT_TRUE(third.ok()) << third.error().message;
  std::vector<uint8_t> back(4096);
  ASSERT_TRUE((*host)->read(0, back.data(), back.size()).ok());
  EXPECT_EQ(back, buf);
  (*host)->close();
}

TEST_F(TargetTest, WithoutFastIoFailIoWaitsForTheTarget) {
  HostOptions o = lossOptions();  // fast_io_fail off
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  std::thread restarter = restartTargetAfter(1500ms);
  std::vector<uint8_t> buf(4096, 0x11);
  auto s = (*host)->write(0, buf.data(), buf.size());
  restarter.join();
  EXPECT_TRUE(s.ok()) << s.error().message;
  EXPECT_EQ((*host)->stats().fast_failed, 0u);
  (*host)->close();
}

TEST_F(TargetTest, CtrlLossTimeoutFailsTheHostForGood) {
  HostOptions o = lossOptions();
  o.fast_io_fail = 200ms;
  o.ctrl_loss_timeout = 1s;
  auto host = NvmeTcpHost::connect("127.0.0.1", target_->port(), kSubnqn, o);
  ASSERT_TRUE(host.ok()) << host.error().message;
  std::vector<uint8_t> buf(4096, 0x77);
  std::thread restarter = restartTargetAfter(3s);
  EXPECT_FALSE((*host)->write(0, buf.data(), buf.size()).ok());
  ASSERT_TRUE(waitForState(**host, HostState::kFailed, 5s)) << hostStateName((*host)->state());
  restarter.join();
  std::this_thread::sleep_for(1s);  // a reconnect would have happened by now
  EXPECT_EQ((*host)->state(), HostState::kFailed);
  auto t0 = Clock::now();
  auto s = (*host)->read(0, buf.data(), buf.size());
  ASSERT_FALSE(s.ok());
  EXPECT_LT(Clock::now() - t0, 100ms);
  EXPECT_NE(s.error().message.find("attach it again"), std::string::npos) << s.error().message;
  (*host)->close();
}

}  // namespace
}  // namespace offcore::nvme
