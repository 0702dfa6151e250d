#include "nexus/nexus_journal.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>

#include "base/files.h"

namespace offcore::nexus {
namespace {

NexusRecord sample() {
  NexusRecord r;
  r.generation = 7;
  r.region_bytes = 1 << 20;
  r.size_bytes = 200ull << 20;  // 200 regions, 4 words
  ReplicaRecord a{"gw1/vol", ReplicaState::kOnline, std::vector<uint64_t>(4, 0)};
  ReplicaRecord b{"gw2/vol", ReplicaState::kFaulted, std::vector<uint64_t>(4, 0)};
  for (uint64_t bit : {0, 1, 2, 63, 64, 130, 199}) b.missed[bit / 64] |= uint64_t{1} << (bit % 64);
  r.replicas = {a, b};
  return r;
}

TEST(NexusJournal, RecordsRoundTrip) {
  NexusRecord r = sample();
  auto back = decodeRecord(encodeRecord(r));
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(back->generation, 7u);
  ASSERT_EQ(back->replicas.size(), 2u);
  EXPECT_EQ(back->replicas[1].state, ReplicaState::kFaulted);
  EXPECT_EQ(back->replicas[1].missed, r.replicas[1].missed);
  EXPECT_EQ(back->replicas[0].missed, r.replicas[0].missed);
}

TEST(NexusJournal, BadRecordsGetOneLineErrors) {
  const char* bad[] = {
      "",
      "[]",
      R"({"version":2})",
      R"({"version":1,"generation":1,"region_bytes":1000,"size_bytes":10,"replicas":[]})",
      R"({"version":1,"generation":1,"region_bytes":4096,"size_bytes":1e30,"replicas":[]})",
      R"({"version":1,"generation":1,"region_bytes":4096,"size_bytes":8192,"replicas":[{"name":"a","state":"online","missed":[[1,5]]}]})",
      R"({"version":1,"generation":1,"region_bytes":4096,"size_bytes":8192,"replicas":[{"name":"a","state":"sleepy","missed":[]}]})",
      R"({"version":1,"generation":1,"region_bytes":512,"size_bytes":1099511627776,"replicas":[]})",
      R"({"version":1,"generation":1,"region_bytes":4096,"size_bytes":65536,"replicas":[{"name":"a","state":"online","missed":[[0,2],[1,1]]}]})",
      R"({"version":1,"generation":1,"region_bytes":4096,"size_bytes":65536,"replicas":[{"name":"a","state":"online","missed":[[3,0]]}]})",
  };
  for (const char* t : bad) {
    auto r = decodeRecord(t);
    EXPECT_FALSE(r.ok()) << t;
    if (!r.ok()) {
      EXPECT_EQ(r.error().message.find('\n'), std::string::npos);
    }
  }
}

TEST(NexusJournal, TheFileJournalIsPrivateAndSurvivesAReload) {
  char dir[] = "/tmp/oc-nexus-journal-XXXXXX";
  ASSERT_NE(::mkdtemp(dir), nullptr);
  std::string path = std::string(dir) + "/v.nexus.json";
  auto j = makeFileJournal(path);
  auto none = j->load();
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->has_value());
  ASSERT_TRUE(j->save(sample()).ok());
  struct stat st {};
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto back = makeFileJournal(path)->load();
  ASSERT_TRUE(back.ok());
  ASSERT_TRUE(back->has_value());
  EXPECT_EQ((*back)->replicas[1].missed, sample().replicas[1].missed);
  ASSERT_TRUE(writeFileAtomic(path, "{garbage").ok());
  auto broken = makeFileJournal(path)->load();
  ASSERT_FALSE(broken.ok());
  EXPECT_NE(broken.error().message.find(path), std::string::npos);
  std::remove(path.c_str());
  ::rmdir(dir);
}

}  // namespace
}  // namespace offcore::nexus
