#include "base/subprocess.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

TEST(SubprocessTest, CapturesBothStreamsAndExitCode) {
  auto r = runCapture({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->out, "out\n");
  EXPECT_EQ(r->err, "err\n");
}

TEST(SubprocessTest, FeedsStdin) {
  SpawnOptions o;
  o.stdin_data = "hello\n";
  auto r = runCapture({"cat"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->out, "hello\n");
}

TEST(SubprocessTest, RunCheckedReportsTheLastStderrLine) {
  auto s = runChecked({"sh", "-c", "echo first >&2; echo 'the reason' >&2; exit 2"});
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().message.find("(exit 2): the reason"), std::string::npos);
}

TEST(SubprocessTest, MissingProgramExits127WithMessage) {
  auto r = runCapture({"/nonexistent/program"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_NE(r->err.find("cannot run"), std::string::npos);
}

TEST(SubprocessTest, InChildFailureStopsTheExec) {
  SpawnOptions o;
  o.in_child = [] { return Status(makeError("setup refused")); };
  auto r = runCapture({"echo", "never"}, o);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_EQ(r->out, "");
  EXPECT_NE(r->err.find("setup refused"), std::string::npos);
}

TEST(SubprocessTest, SignalledChildReports128PlusSignal) {
  auto r = runCapture({"sh", "-c", "kill -9 $$"});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 128 + 9);
}

}  // namespace
}  // namespace offcore
