#include "base/result.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

Result<int> half(int v) {
  if (v % 2) return makeError("odd: " + std::to_string(v), EINVAL);
  return v / 2;
}

Result<int> quarter(int v) {
  OC_ASSIGN_OR_RETURN(int h, half(v));
  return half(h);
}

Status checkEven(int v) {
  OC_TRY(half(v));
  return okStatus();
}

TEST(ResultTest, CarriesValueOrError) {
  auto ok = half(8);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 4);
  auto bad = half(3);
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().code, EINVAL);
  EXPECT_EQ(bad.error().message, "odd: 3");
}

TEST(ResultTest, MacrosPropagateTheFirstError) {
  EXPECT_EQ(*quarter(8), 2);
  EXPECT_EQ(quarter(6).error().message, "odd: 3");
  EXPECT_TRUE(checkEven(2).ok());
  EXPECT_FALSE(checkEven(1).ok());
}

TEST(ResultTest, WrapPrefixesContext) {
  Error e = makeError("EACCES").wrap("cgroup").wrap("dpu up");
  EXPECT_EQ(e.message, "dpu up: cgroup: EACCES");
}

TEST(ResultTest, ErrnoErrorNamesTheCall) {
  Error e = errnoError("open /x", ENOENT);
  EXPECT_EQ(e.code, ENOENT);
  EXPECT_NE(e.message.find("open /x: No such file"), std::string::npos);
}

TEST(ResultTest, ValueOrFallsBack) {
  EXPECT_EQ(half(3).valueOr(-1), -1);
  EXPECT_EQ(half(4).valueOr(-1), 2);
}

}  // namespace
}  // namespace offcore
