#include "bench/vm_results.h"

#include <gtest/gtest.h>

namespace offcore {
namespace {

using nlohmann::json;

json fio(int run, const std::string& mode, const std::string& job, double ios, double runtime_ms, double host,
         double soc) {
  return {{"case", "fio"},
          {"run", run},
          {"mode", mode},
          {"job", job},
          {"bs_kib", 4},
          {"ios", ios},
          {"kib", ios * 4},
          {"runtime_ms", runtime_ms},
          {"host_cpu_s", host},
          {"soc_cpu_s", soc},
          {"wall_s", runtime_ms / 1000 + 1}};
}

TEST(VmResults, TakesFioLinesAndSkipsTheRest) {
  VmResults r;
  EXPECT_EQ(r.add({fio(1, "offcore", "randread", 50000, 10000, 2.5, 0.5), json{{"case", "other"}},
                   fio(1, "qsd", "randread", 0, 10000, 1, 0), json::array()}),
            1);
  EXPECT_EQ(r.runs("offcore", "randread"), 1);
  EXPECT_EQ(r.runs("qsd", "randread"), 0);  // no I/O done: not a measurement
  EXPECT_FALSE(r.empty());
}

TEST(VmResults, RatesAndCpuPerIo) {
  VmResults r;
  r.add({fio(1, "offcore", "randread", 50000, 10000, 2.5, 0.5)});
  EXPECT_DOUBLE_EQ(*r.median("offcore", "randread", [](const VmJob& j) { return j.iops(); }), 5000);
  EXPECT_DOUBLE_EQ(*r.median("offcore", "randread", [](const VmJob& j) { return j.hostUsPerIo(); }), 50);
  EXPECT_DOUBLE_EQ(*r.median("offcore", "randread", [](const VmJob& j) { return j.socUsPerIo(); }), 10);
  // 200000 KiB in 10 s
  EXPECT_NEAR(*r.median("offcore", "randread", [](const VmJob& j) { return j.mibps(); }), 19.53, 0.01);
  EXPECT_FALSE(r.median("qemu", "randread", [](const VmJob& j) { return j.iops(); }).has_value());
}

TEST(VmResults, MedianOverRuns) {
  VmResults r;
  r.add({fio(1, "qsd", "seqread", 1000, 10000, 1, 0), fio(2, "qsd", "seqread", 3000, 10000, 1, 0),
         fio(3, "qsd", "seqread", 2000, 10000, 1, 0)});
  EXPECT_EQ(r.runs("qsd", "seqread"), 3);
  EXPECT_DOUBLE_EQ(*r.median("qsd", "seqread", [](const VmJob& j) { return j.iops(); }), 200);
}

}  // namespace
}  // namespace offcore
