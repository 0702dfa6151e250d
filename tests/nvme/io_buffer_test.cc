// The target's read buffers: recycled per thread, bounded, sized to the
// command.
#include "nvme/target/io_buffer.h"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace offcore::nvme {
namespace {

TEST(IoBuffer, AReleasedBufferIsReusedForTheSameSizeClass) {
  const uint8_t* first = nullptr;
  {
    auto b = acquireIoBuffer(4096);
    ASSERT_EQ(b->size, 4096u);
    EXPECT_GE(b->capacity, 4096u);
    first = b->data();
  }
  auto again = acquireIoBuffer(3000);  // rounds up to the same 4 KiB class
  EXPECT_EQ(again->data(), first);
  EXPECT_EQ(again->size, 3000u);
  auto other = acquireIoBuffer(4096);  // the pooled one is taken: a new one
  EXPECT_NE(other->data(), first);
  auto big = acquireIoBuffer(131072 + 1);
  EXPECT_EQ(big->capacity, 262144u);
}

TEST(IoBuffer, ThePoolKeepsAtMostItsBoundPerThread) {
  // Run on a fresh thread: its pool starts empty.
  std::thread([] {
    std::vector<std::shared_ptr<IoBuffer>> held;
    for (int i = 0; i < 12; ++i) held.push_back(acquireIoBuffer(1 << 20));  // 12 MiB > the 8 MiB bound
    EXPECT_EQ(ioPoolBytes(), 0u);
    held.clear();  // 8 go back to the pool, 4 are freed
    EXPECT_EQ(ioPoolBytes(), kIoPoolBytes);
    auto one = acquireIoBuffer(1 << 20);
    EXPECT_EQ(ioPoolBytes(), kIoPoolBytes - (1 << 20));
    auto small = acquireIoBuffer(100);  // another class: not from the pool
    EXPECT_EQ(ioPoolBytes(), kIoPoolBytes - (1 << 20));
  }).join();
}

}  // namespace
}  // namespace offcore::nvme
