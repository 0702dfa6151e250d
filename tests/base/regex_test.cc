#include "base/regex.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(Regex, FullAndPartialMatch) {
  auto re = Regex::compile("/v[0-9]+/items");
  ASSERT_TRUE(re.ok()) << re.error().message;
  EXPECT_TRUE(re->fullMatch("/v12/items"));
  EXPECT_FALSE(re->fullMatch("/v12/items/3"));
  EXPECT_TRUE(re->partialMatch("/api/v12/items/3"));
  EXPECT_FALSE(re->partialMatch("/api/v/items"));
  EXPECT_EQ(re->pattern(), "/v[0-9]+/items");
}

TEST(Regex, SubjectsWithNulBytesAreWhole) {
  auto re = Regex::compile("a\\x00b");
  ASSERT_TRUE(re.ok());
  EXPECT_TRUE(re->fullMatch(std::string_view("a\0b", 3)));
}

TEST(Regex, RefusesWhatRe2DoesNotSpeak) {
  for (const char* bad : {"((", "(a)\\1", "a(?=b)", "x{2,1}"}) {
    auto re = Regex::compile(bad);
    ASSERT_FALSE(re.ok()) << bad;
    EXPECT_NE(re.error().message.find(bad), std::string::npos) << re.error().message;
    EXPECT_EQ(re.error().message.find('\n'), std::string::npos);
  }
}

TEST(Regex, BoundsTheProgramAHostilePatternBuilds) {
  auto re = Regex::compile("((a{1000}){1000}){1000}");
  EXPECT_FALSE(re.ok());
}

// A backtracking engine takes exponential time here, or recurses once per
// subject byte and overflows the stack; RE2 runs in one linear pass.
TEST(Regex, LongSubjectsAndNestedStarsDoNotBacktrack) {
  std::string subject(1 << 20, 'a');
  auto nested = Regex::compile("(a*)*b");
  ASSERT_TRUE(nested.ok());
  EXPECT_FALSE(nested->fullMatch(subject));
  auto any = Regex::compile("(.|\\n)*");
  ASSERT_TRUE(any.ok());
  EXPECT_TRUE(any->fullMatch(subject));
}

TEST(Regex, MovesKeepTheProgram) {
  auto re = Regex::compile("ab+");
  ASSERT_TRUE(re.ok());
  Regex moved = std::move(*re);
  EXPECT_TRUE(moved.fullMatch("abbb"));
}

}  // namespace
}  // namespace offcore
