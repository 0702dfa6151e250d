#include "image/lazy/fail_fast_source.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <thread>

namespace offcore {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

// A back end that is up, down (each fetch waits `timeout`, then ETIMEDOUT,
// like a registry source whose retries ran out), or corrupt (EIO at once).
class FlakySource final : public ChunkSource {
 public:
  uint64_t rawSize() const override { return 8 * 4096; }
  uint32_t chunkSize() const override { return 4096; }
  Status fetch(uint64_t index, std::string& out) override {
    ++fetches;
    if (down) {
      std::this_thread::sleep_for(timeout);
      return makeError("chunk " + std::to_string(index) + ": connection refused", ETIMEDOUT);
    }
    if (corrupt) return makeError("sha256 mismatch", EIO);
    out.assign(4096, static_cast<char>('a' + index));
    return {};
  }
  uint64_t bytesFetched() const override { return 0; }
  std::string describe() const override { return "flaky"; }

  std::atomic<bool> down{false}, corrupt{false};
  std::atomic<int> fetches{0};
  std::chrono::milliseconds timeout{300};
};

bool waitUntil(const std::function<bool()>& cond, std::chrono::milliseconds limit) {
  auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (cond()) return true;
    std::this_thread::sleep_for(10ms);
  }
  return cond();
}

TEST(FailFastSourceTest, ADownBackEndFailsFurtherFetchesAtOnceUntilAProbeGetsThrough) {
  auto health = std::make_shared<BackendHealth>("registry test");
  auto raw = std::make_unique<FlakySource>();
  FlakySource* flaky = raw.get();
  FailFastSource src(std::move(raw), health, 100ms);
  std::string out;
  ASSERT_TRUE(src.fetch(0, out).ok());
  EXPECT_EQ(out[0], 'a');

  flaky->down = true;
  auto t0 = Clock::now();
  auto first = src.fetch(1, out);
  ASSERT_FALSE(first.ok());
  EXPECT_GE(Clock::now() - t0, 250ms) << "the first fetch takes the source's own timeout";
  EXPECT_TRUE(health->down());

  for (uint64_t c = 2; c < 6; ++c) {  // re-issued reads and other chunks
    t0 = Clock::now();
    auto s = src.fetch(c, out);
    ASSERT_FALSE(s.ok());
    EXPECT_EQ(s.error().code, EIO);
    EXPECT_LT(Clock::now() - t0, 50ms) << "chunk " << c << " waited for a down back end";
    EXPECT_NE(s.error().message.find("is down"), std::string::npos) << s.error().message;
  }

  flaky->down = false;
  ASSERT_TRUE(waitUntil([&] { return !health->down(); }, 2s)) << "the probe never marked it up";
  ASSERT_TRUE(src.fetch(3, out).ok());
  EXPECT_EQ(out[0], 'd');
}

TEST(FailFastSourceTest, HealthIsSharedByEveryLayerOfTheBackEnd) {
  auto health = std::make_shared<BackendHealth>("gateway 127.0.0.1:4420");
  auto a_raw = std::make_unique<FlakySource>();
  auto b_raw = std::make_unique<FlakySource>();
  FlakySource* a_flaky = a_raw.get();
  FlakySource* b_flaky = b_raw.get();
  auto a = std::make_unique<FailFastSource>(std::move(a_raw), health, 100ms);
  FailFastSource b(std::move(b_raw), health, 100ms);
  a_flaky->down = b_flaky->down = true;
  std::string out;
  EXPECT_FALSE(a->fetch(0, out).ok());
  int before = b_flaky->fetches;
  auto t0 = Clock::now();
  EXPECT_FALSE(b.fetch(0, out).ok());
  EXPECT_LT(Clock::now() - t0, 50ms);
  a.reset();  // the layer that probed goes away (joins its probe); b probes now
  EXPECT_FALSE(b.fetch(1, out).ok());
  EXPECT_TRUE(waitUntil([&] { return b_flaky->fetches > before; }, 2s)) << "nobody probes any more";
  b_flaky->down = false;
  ASSERT_TRUE(waitUntil([&] { return !health->down(); }, 2s));
  EXPECT_TRUE(b.fetch(1, out).ok());
}

TEST(FailFastSourceTest, ACorruptChunkDoesNotMarkTheBackEndDown) {
  auto health = std::make_shared<BackendHealth>("registry test");
  auto raw = std::make_unique<FlakySource>();
  raw->corrupt = true;
  FailFastSource src(std::move(raw), health, 100ms);
  std::string out;
  auto s = src.fetch(0, out);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error().code, EIO);
  EXPECT_FALSE(health->down());
}

}  // namespace
}  // namespace offcore
