#include "nexus/late_replica.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "fakes.h"
#include "nexus/nexus.h"

namespace offcore::nexus {
namespace {

using test::MemoryDevice;
using test::MemoryJournal;

constexpr uint64_t kSize = 8 << 20;

TEST(LateReplica, FailsUntilOpenedThenForwards) {
  auto backing = std::make_shared<MemoryDevice>(kSize);
  std::atomic<bool> reachable{false};
  std::atomic<int> tries{0};
  auto late = LateReplica::make(
      [&]() -> Result<std::shared_ptr<BlockDevice>> {
        tries++;
        if (!reachable) return makeError("connection refused");
        return std::shared_ptr<BlockDevice>(backing);
      },
      kSize, 4096, /*polled=*/false);
  ASSERT_TRUE(late.ok());
  std::vector<uint8_t> buf(4096, 7);
  EXPECT_EQ((*late)->write(0, buf.data(), buf.size()).error().code, kBlockIo);  // writes never open
  EXPECT_EQ(tries.load(), 0);
  EXPECT_FALSE((*late)->read(0, buf.data(), buf.size()).ok());  // the probe's read tries
  EXPECT_EQ(tries.load(), 1);
  EXPECT_FALSE((*late)->read(0, buf.data(), buf.size()).ok());  // not again within a second
  EXPECT_EQ(tries.load(), 1);
  reachable = true;
  std::this_thread::sleep_for(std::chrono::milliseconds(1050));
  ASSERT_TRUE((*late)->read(0, buf.data(), buf.size()).ok());
  EXPECT_TRUE((*late)->opened());
  ASSERT_TRUE((*late)->write(4096, buf.data(), buf.size()).ok());
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE(backing->read(4096, got.data(), got.size()).ok());
  EXPECT_EQ(got, buf);
}

TEST(LateReplica, ADeviceOfAnotherSizeIsNotUsed) {
  auto late = LateReplica::make(
      []() -> Result<std::shared_ptr<BlockDevice>> {
        return std::shared_ptr<BlockDevice>(std::make_shared<MemoryDevice>(kSize / 2));
      },
      kSize, 4096, false);
  ASSERT_TRUE(late.ok());
  std::vector<uint8_t> buf(4096);
  EXPECT_FALSE((*late)->read(0, buf.data(), buf.size()).ok());
  EXPECT_FALSE((*late)->opened());
}

TEST(LateReplica, ANexusStartsDegradedAndRebuildsItWhenItComesUp) {
  auto a = std::make_shared<MemoryDevice>(kSize);
  auto b = std::make_shared<MemoryDevice>(kSize);
  std::atomic<bool> reachable{false};
  auto late = LateReplica::make(
      [&]() -> Result<std::shared_ptr<BlockDevice>> {
        if (!reachable) return makeError("connection refused");
        return std::shared_ptr<BlockDevice>(b);
      },
      kSize, 4096, false);
  ASSERT_TRUE(late.ok());
  NexusOptions o;
  o.probe_interval_ms = 20;
  auto nx = openNexus({{"a", a}, {"b", *late}}, std::make_shared<MemoryJournal>(), o);
  ASSERT_TRUE(nx.ok()) << nx.error().message;
  std::vector<uint8_t> data(4096, 0x5a);
  ASSERT_TRUE((*nx)->write(1 << 20, data.data(), data.size()).ok());  // degraded, no error
  EXPECT_EQ((*nx)->status().state, "degraded");
  reachable = true;
  ASSERT_TRUE((*nx)->waitIdle(5000));
  std::vector<uint8_t> got(4096);
  ASSERT_TRUE(b->read(1 << 20, got.data(), got.size()).ok());
  EXPECT_EQ(got, data);
}

}  // namespace
}  // namespace offcore::nexus
