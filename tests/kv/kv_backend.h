// A store test's key-value back end by its parameter: "dir" (none: the
// test uses its directory Impl), "fake" (tests/kv/fake_kv.h, shared by
// every client) or "etcd" (a real member the test starts; each client() a
// new connection, as another machine would have).
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <memory>
#include <string>

#include "../kv/etcd_member.h"
#include "../kv/fake_kv.h"
#include "base/files.h"
#include "kv/etcd_client.h"

namespace offcore::kv {

class KvBackend {
 public:
  Status start(const std::string& param) {
    if (param == "fake") raw_ = fake_ = std::make_shared<FakeKv>();
    if (param == "etcd") {
      OC_TRY(member_.start());
      raw_ = makeEtcdClient(member_.options());
    }
    return okStatus();
  }
  bool kv() const { return raw_ != nullptr; }
  // The client the test inspects with.
  const std::shared_ptr<KvClient>& raw() const { return raw_; }
  // A client for one more store under test.
  std::shared_ptr<KvClient> client() {
    if (fake_) return fake_;
    return makeEtcdClient(member_.options());
  }

 private:
  EtcdMember member_;
  std::shared_ptr<KvClient> raw_;
  std::shared_ptr<FakeKv> fake_;
};

// A store test's fixture, parameterised by the back end ("dir", "fake",
// "etcd"): a private directory (removed after) and the KvBackend.
class StoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/oc-store-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    auto up = kv_.start(GetParam());
    ASSERT_TRUE(up.ok()) << up.error().message;
  }
  void TearDown() override { (void)removeTree(dir_); }

  std::string dir_;
  KvBackend kv_;
};

}  // namespace offcore::kv
