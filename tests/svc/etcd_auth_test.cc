// The store on an etcd with authentication on, its users and roles made by
// scripts/etcd-roles.sh (with etcdctl, a real client): the admin writes
// the resources, a node's agent writes its own keys and no other node's,
// and a refused write is one line that names the user and what to do.
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "../kv/etcd_member.h"
#include "base/files.h"
#include "base/subprocess.h"
#include "mesh/tls/ca.h"
#include "svc/cluster_store.h"

namespace offcore::svc {
namespace {

const char* kNet = R"(apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: pods}
spec: {cidr: 10.20.0.0/16, gateway: 10.20.0.1}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  selector: {app: web}
  ports: [{port: 80}]
)";

// Over each wire: gRPC sends the token as metadata, the gateway as a header.
class EtcdAuthTest : public ::testing::TestWithParam<kv::EtcdOptions::Wire> {
 protected:
  void SetUp() override {
    auto st = member_.start();
    ASSERT_TRUE(st.ok()) << st.error().message;
    users_ = member_.dir() + "/users";
    auto made = runChecked({"bash", std::string(OFFCORE_SOURCE_DIR) + "/scripts/etcd-roles.sh", "--endpoints",
                            member_.options().endpoints.at(0), "--dir", users_, "a", "b"});
    ASSERT_TRUE(made.ok()) << made.error().message;
  }

  std::unique_ptr<kv::KvClient> client(const std::string& user, const std::string& password = "") {
    kv::EtcdOptions o = member_.options();
    o.wire = GetParam();
    o.user = user;
    o.password = password.empty() && !user.empty() ? readFile(users_ + "/" + user + ".password").valueOr("") : password;
    while (!o.password.empty() && o.password.back() == '\n') o.password.pop_back();
    return kv::makeEtcdClient(o);
  }
  ClusterStore store(const std::string& user) {
    return ClusterStore(makeEtcdStorage(client(user), 5), AddressPlan("10.96.0.0/16"));
  }

  kv::EtcdMember member_;
  std::string users_;
};

EndpointRequest pod(const std::string& node, const std::string& name) {
  EndpointRequest r;
  r.node = node;
  r.container_id = name;
  r.ifname = "eth0";
  r.pod_name = name;
  r.subnet = "pods";
  return r;
}

TEST_P(EtcdAuthTest, EachRoleWritesOnlyItsKeys) {
  ClusterStore admin = store("offcore-admin");
  auto docs = parseResources(kNet, "net.yaml");
  ASSERT_TRUE(docs.ok());
  auto applied = admin.apply(*docs);
  ASSERT_TRUE(applied.ok()) << applied.error().message;

  // Node a's agent: its record, its pods, its lease, health and claims.
  ClusterStore a = store("node-a");
  ASSERT_TRUE(
      a.registerNode(NodeRecord{"a", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:01", "02:00:00:00:01:01"}).ok());
  auto ep = a.addEndpoint(pod("a", "p1"));
  ASSERT_TRUE(ep.ok()) << ep.error().message;
  ASSERT_TRUE(a.heartbeat("a", 1).ok());
  NodeHealth h;
  h.node = "a";
  h.programmed_generation = 3;
  ASSERT_TRUE(a.writeHealth(h).ok());
  auto held = a.claim("10.77.200.1", "a", true);
  ASSERT_TRUE(held.ok()) << held.error().message;
  EXPECT_EQ(*held, "a");
  auto seen = a.load();  // it reads everything
  ASSERT_TRUE(seen.ok());
  EXPECT_EQ(seen->services.count("web"), 1u);

  // ...and nothing of node b's, nor the resources.
  auto other = a.addEndpoint(pod("b", "p2"));
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, EACCES);
  EXPECT_NE(other.error().message.find("permission denied"), std::string::npos) << other.error().message;
  EXPECT_NE(other.error().message.find("user 'node-a'"), std::string::npos) << other.error().message;
  EXPECT_EQ(other.error().message.find('\n'), std::string::npos);
  auto svc =
      a.apply(*parseResources("apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: evil}\nspec:\n"
                              "  selector: {app: x}\n  ports: [{port: 81}]\n",
                              "evil.yaml"));
  ASSERT_FALSE(svc.ok());
  EXPECT_EQ(svc.error().code, EACCES);
  EXPECT_FALSE(a.heartbeat("b", 1).ok());
  // Nothing was half-written: the state holds what the allowed writes made.
  auto after = admin.load();
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->endpoints.size(), 1u);
  EXPECT_EQ(after->services.count("evil"), 0u);

  // The image catalog (image/catalog_storage.h): the CLI converts into it,
  // a node's image service only reads it.
  const std::string layer = "/offcore/images/v1/layers/sha256:d1";
  auto put = client("offcore-admin")->txn({}, {kv::Op::put(layer, "{}")});
  ASSERT_TRUE(put.ok()) << put.error().message;
  auto read = client("node-a")->range("/offcore/images/v1/", kv::prefixEnd("/offcore/images/v1/"));
  ASSERT_TRUE(read.ok()) << read.error().message;
  EXPECT_EQ(read->kvs.size(), 1u);
  auto forged = client("node-a")->txn({}, {kv::Op::put(layer, R"({"fs_bytes": 1})")});
  ASSERT_FALSE(forged.ok());
  EXPECT_EQ(forged.error().code, EACCES);

  // Replicated volumes (src/volumes): the CLI records them, a node reads
  // the records and writes claims and journals (any volume may attach on
  // any node), but cannot forge a record.
  const std::string rec = "/offcore/volumes/v1/records/kv";
  ASSERT_TRUE(client("offcore-admin")->txn({}, {kv::Op::put(rec, "{}")}).ok());
  auto records = client("node-a")->range(rec, "");
  ASSERT_TRUE(records.ok()) << records.error().message;
  EXPECT_EQ(records->kvs.size(), 1u);
  auto claim = client("node-a")->txn({}, {kv::Op::put("/offcore/nexus/v1/claims/10.0.0.1:4420%2Fnqn.x:v", "{}"),
                                          kv::Op::put("/offcore/nexus/v1/journals/kv/head", "{}")});
  EXPECT_TRUE(claim.ok()) << claim.error().message;
  auto moved = client("node-a")->txn({}, {kv::Op::put(rec, R"({"replicas": []})")});
  ASSERT_FALSE(moved.ok());
  EXPECT_EQ(moved.error().code, EACCES);

  // VM records: `vm qemu-exec` reads them in a node's SoC; only the CLI
  // writes them. The CSI catalog is the controller's (the CLI's user) alone.
  const std::string vm = "/offcore/vms/v1/records/vm1";
  ASSERT_TRUE(client("offcore-admin")->txn({}, {kv::Op::put(vm, "{}")}).ok());
  auto vms = client("node-a")->range(vm, "");
  ASSERT_TRUE(vms.ok()) << vms.error().message;
  EXPECT_EQ(vms->kvs.size(), 1u);
  auto vm_forged = client("node-a")->txn({}, {kv::Op::put(vm, R"({"kernel": "/evil"})")});
  ASSERT_FALSE(vm_forged.ok());
  EXPECT_EQ(vm_forged.error().code, EACCES);
  const std::string entry = "/offcore/csi/v1/records/pvc-1";
  ASSERT_TRUE(client("offcore-admin")->txn({}, {kv::Op::put(entry, "{}")}).ok());
  auto csi_read = client("node-a")->range(entry, "");
  ASSERT_FALSE(csi_read.ok());
  EXPECT_EQ(csi_read.error().code, EACCES);

  // The mesh CA (mesh/tls/ca_store.h): made and read as the mesh CA's user;
  // a node (and so its proxy worker) can neither read nor replace it.
  auto ca = mesh::tls::Ca::loadOrCreate(*mesh::tls::makeKvCaStore(client("offcore-mesh-ca")), "cluster.local");
  ASSERT_TRUE(ca.ok()) << ca.error().message;
  auto stolen = client("node-a")->range(mesh::tls::kMeshCaKey, "");
  ASSERT_FALSE(stolen.ok());
  EXPECT_EQ(stolen.error().code, EACCES);
  auto node_ca = mesh::tls::Ca::loadOrCreate(*mesh::tls::makeKvCaStore(client("node-a")), "cluster.local");
  ASSERT_FALSE(node_ca.ok()) << "a node read or made the mesh CA";
  EXPECT_EQ(node_ca.error().code, EACCES);
  auto again = mesh::tls::Ca::loadOrCreate(*mesh::tls::makeKvCaStore(client("offcore-mesh-ca")), "cluster.local");
  ASSERT_TRUE(again.ok()) << again.error().message;
  EXPECT_EQ((*again)->caPem(), (*ca)->caPem());
}

TEST_P(EtcdAuthTest, NoUserOrAWrongPasswordIsRefusedWithOneLine) {
  auto anonymous = client("")->range("/offcore/v1/", kv::prefixEnd("/offcore/v1/"));
  ASSERT_FALSE(anonymous.ok());
  EXPECT_EQ(anonymous.error().message.find('\n'), std::string::npos);
  auto wrong = client("node-a", "not-the-password")->range("/offcore/v1/", kv::prefixEnd("/offcore/v1/"));
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().message.find("authenticating to etcd as user 'node-a'"), std::string::npos)
      << wrong.error().message;
}

TEST_P(EtcdAuthTest, ThePasswordFileMustBeTheOwnersAlone) {
  Config c;
  c.cluster_store = member_.url();
  c.etcd_wire = GetParam() == kv::EtcdOptions::Wire::Grpc ? "grpc" : "gateway";
  c.etcd_user = "node-a";
  c.etcd_password_file = users_ + "/node-a.password";
  ASSERT_EQ(::chmod(c.etcd_password_file.c_str(), 0644), 0);
  auto open = openStateStorage(c);
  ASSERT_FALSE(open.ok());
  EXPECT_NE(open.error().message.find("chmod 600"), std::string::npos) << open.error().message;
  ASSERT_EQ(::chmod(c.etcd_password_file.c_str(), 0600), 0);
  auto ok = openStateStorage(c);
  ASSERT_TRUE(ok.ok()) << ok.error().message;
  EXPECT_TRUE((*ok)->load().ok());
}

// A token issued before the roles changed is refused by etcd ("auth store is
// old"); the client asks for a new one and the write goes through.
TEST_P(EtcdAuthTest, ATokenFromBeforeARoleChangeIsRenewed) {
  ClusterStore a = store("node-a");
  ASSERT_TRUE(a.heartbeat("a", 1).ok());
  auto more = runChecked({"bash", std::string(OFFCORE_SOURCE_DIR) + "/scripts/etcd-roles.sh", "--endpoints",
                          member_.options().endpoints.at(0), "--dir", users_, "c"});
  ASSERT_TRUE(more.ok()) << more.error().message;
  auto again = a.heartbeat("a", 2);
  ASSERT_TRUE(again.ok()) << again.error().message;
  auto other = a.heartbeat("c", 1);  // the new role is c's, not a's
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, EACCES);
}

// Over gRPC a client certificate is a user: etcd takes its CN ("node-a"
// here) when no token comes with the call, so a node needs no password.
// The gateway cannot (its own connection to the member carries the member's
// certificate), so there a certificate alone is refused.
TEST(EtcdAuthCertTest, OverGrpcTheCertificatesNameIsTheUser) {
  kv::EtcdMember member;
  auto up = member.start(/*tls=*/true);
  ASSERT_TRUE(up.ok()) << up.error().message;
  const kv::EtcdOptions tls = member.options();
  auto made =
      runChecked({"env", "ETCDCTL_CACERT=" + tls.ca_file, "ETCDCTL_CERT=" + tls.cert_file,
                  "ETCDCTL_KEY=" + tls.key_file, "bash", std::string(OFFCORE_SOURCE_DIR) + "/scripts/etcd-roles.sh",
                  "--endpoints", tls.endpoints.at(0), "--dir", member.dir() + "/users", "a", "b"});
  ASSERT_TRUE(made.ok()) << made.error().message;

  ClusterStore a(makeEtcdStorage(kv::makeEtcdClient(tls), 5), AddressPlan("10.96.0.0/16"));  // gRPC, no user
  auto beat = a.heartbeat("a", 1);
  ASSERT_TRUE(beat.ok()) << beat.error().message;
  auto other = a.heartbeat("b", 1);
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.error().code, EACCES) << other.error().message;

  kv::EtcdOptions via_gateway = tls;
  via_gateway.wire = kv::EtcdOptions::Wire::Gateway;
  ClusterStore g(makeEtcdStorage(kv::makeEtcdClient(via_gateway), 5), AddressPlan("10.96.0.0/16"));
  EXPECT_FALSE(g.heartbeat("a", 2).ok());
}

INSTANTIATE_TEST_SUITE_P(Wires, EtcdAuthTest,
                         ::testing::Values(kv::EtcdOptions::Wire::Grpc, kv::EtcdOptions::Wire::Gateway),
                         [](const auto& info) {
                           return info.param == kv::EtcdOptions::Wire::Grpc ? "grpc" : "gateway";
                         });

}  // namespace
}  // namespace offcore::svc
