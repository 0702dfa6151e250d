#include "base/base64.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(Base64Test, RoundTrips) {
  EXPECT_EQ(base64Encode("alice:s3cret"), "YWxpY2U6czNjcmV0");
  EXPECT_EQ(*base64Decode("YWxpY2U6czNjcmV0"), "alice:s3cret");
  EXPECT_EQ(*base64Decode(base64Encode("a:b")), "a:b");
  EXPECT_EQ(base64Encode(""), "");
  EXPECT_EQ(*base64Decode(""), "");
  std::string binary("\0\xff\x10", 3);
  EXPECT_EQ(*base64Decode(base64Encode(binary)), binary);
}

TEST(Base64Test, RefusesWhatIsNotBase64) {
  EXPECT_FALSE(base64Decode("abc").ok());
  EXPECT_FALSE(base64Decode("ab!=").ok());
  EXPECT_FALSE(base64Decode("YWJj", 3).ok());  // longer than the caller allows
}

}  // namespace
}  // namespace offcore
