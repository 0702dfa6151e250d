#include "base/byte_size.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(ByteSizeTest, ParsesBinaryUnits) {
  EXPECT_EQ(*parseByteSize("4096"), 4096u);
  EXPECT_EQ(*parseByteSize("256K"), 256ULL << 10);
  EXPECT_EQ(*parseByteSize("512M"), 512ULL << 20);
  EXPECT_EQ(*parseByteSize("2GiB"), 2ULL << 30);
  EXPECT_EQ(*parseByteSize("16T"), 16ULL << 40);
  EXPECT_EQ(*parseByteSize("18446744073709551615"), ~0ULL);
}

TEST(ByteSizeTest, RefusesNegativeFractionalAndOverflowingSizes) {
  // "-1" once became 2^64 - 1 through stoull; "99999999999999999999" and
  // "20000000000000000000" wrapped past the old overflow check.
  for (const char* bad : {"", "M", "12X", "-1", " 5", "1.5G", "99999999999999999999", "20000000000000000000",
                          "18446744073709551616", "16777216T", "17179869184G"}) {
    auto r = parseByteSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_FALSE(r.error().message.empty());
    }
  }
}

}  // namespace
}  // namespace offcore
