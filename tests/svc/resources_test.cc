#include "svc/resources.h"

#include <gtest/gtest.h>

#include <set>

#include "svc/cluster_store.h"

namespace offcore::svc {
namespace {

const char* kGood = R"(apiVersion: offcore.io/v1
kind: VPC
metadata:
  name: vpc1
---
apiVersion: offcore.io/v1
kind: Subnet
metadata: {name: net1}
spec:
  vpc: vpc1
  cidr: 10.1.0.0/24
---
apiVersion: offcore.io/v1
kind: Backend
metadata:
  name: web-1
  labels: {app: web, tier: front}
spec:
  kind: pod
  vpc: vpc1
  pod: web-1
---
apiVersion: offcore.io/v1
kind: Backend
metadata: {name: db, labels: {app: db}}
spec: {kind: vm, vpc: vpc1, ip: 10.1.0.200, node: n1}
---
apiVersion: offcore.io/v1
kind: Service
metadata: {name: web}
spec:
  vpc: vpc1
  ports:
    - {name: http, port: 80, targetPort: 8080}
    - {port: 53, protocol: UDP}
  selector: {app: web}
---
apiVersion: offcore.io/v1
kind: NetworkProbe
metadata: {name: web-1}
spec: {backend: web-1, type: http, port: 8080}
)";

TEST(ResourceParseTest, GoodDocumentsParseWithDefaults) {
  auto r = parseResources(kGood, "good.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 6u);
  EXPECT_STREQ((*r)[0].kind(), "VPC");
  EXPECT_EQ(std::get<Vpc>((*r)[0].value).vni, 0u);  // assigned on apply
  const auto& subnet = std::get<Subnet>((*r)[1].value);
  EXPECT_EQ(subnet.gateway, "10.1.0.1");
  EXPECT_EQ((*r)[1].line, 6);
  const auto& pod = std::get<Backend>((*r)[2].value);
  EXPECT_EQ(pod.labels.at("tier"), "front");
  EXPECT_EQ(pod.pod, "web-1");
  const auto& vm = std::get<Backend>((*r)[3].value);
  EXPECT_EQ(vm.ip, "10.1.0.200");
  EXPECT_EQ(vm.node, "n1");
  const auto& svc = std::get<Service>((*r)[4].value);
  EXPECT_EQ(svc.type, "ClusterIP");
  EXPECT_EQ(svc.scope, "vpc");
  ASSERT_EQ(svc.ports.size(), 2u);
  EXPECT_EQ(svc.ports[0].target_port, 8080);
  EXPECT_EQ(svc.ports[1].target_port, 53);
  EXPECT_EQ(svc.ports[1].protocol, "UDP");
  const auto& probe = std::get<NetworkProbe>((*r)[5].value);
  EXPECT_EQ(probe.path, "/");
  EXPECT_EQ(probe.interval_ms, 1000u);
  EXPECT_EQ(probe.timeout_ms, 500u);
  EXPECT_EQ(probe.failure_threshold, 3u);
}

TEST(ResourceParseTest, EmptyDocumentsAndCommentsAreSkipped) {
  auto r = parseResources("# nothing\n---\n---\n", "e.yaml");
  ASSERT_TRUE(r.ok());
  EXPECT_TRUE(r->empty());
}

// yaml-cpp 0.7's LoadAll() spins forever on a lone ','; documents are split
// and loaded one by one, and a document yaml-cpp reads as nothing is an error.
TEST(ResourceParseTest, StrayTokensAndDocumentMarkers) {
  auto comma = parseResources("apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: a}\n---\n# x\n,\n", "c.yaml");
  ASSERT_FALSE(comma.ok());
  EXPECT_EQ(comma.error().message,
            "c.yaml:6: YAML syntax error: cannot parse this document (a stray ',', ']' or '}'?)");
  const char* vpc = "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: NAME}\n";
  auto named = [&](const std::string& n) {
    std::string y = vpc;
    return y.replace(y.find("NAME"), 4, n);
  };
  // `---` twice, `...` then a bare document, a `%YAML` directive.
  auto r = parseResources("---\n---\n" + named("a") + "...\n" + named("b") + "...\n%YAML 1.2\n---\n" + named("c") +
                              "--- # comment\n" + named("d-x"),
                          "m.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  ASSERT_EQ(r->size(), 4u);
  EXPECT_EQ((*r)[1].name(), "b");
  EXPECT_EQ((*r)[1].line, 7);
  EXPECT_EQ((*r)[3].name(), "d-x");
  EXPECT_EQ((*r)[3].line, 17);
}

// Line 14 holds the bad port, as in the error message of the spec.
TEST(ResourceParseTest, ErrorNamesFileLineResourceAndField) {
  std::string yaml = std::string(kGood).substr(0, std::string(kGood).find("apiVersion: offcore.io/v1\nkind: Subnet"));
  yaml =
      "# web\n#\n#\n#\n#\n#\n#\n#\napiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports:\n"
      "    - port: 70000\n  selector: {app: web}\n";
  auto r = parseResources(yaml, "web.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message, "web.yaml:14: Service \"web\": spec.ports[0].port: must be 1-65535 (got 70000)");
}

struct BadCase {
  std::string spec_yaml;  // the document after apiVersion (line 2 on)
  std::string expected;   // the whole error message
};

class ResourceValidationTest : public ::testing::TestWithParam<BadCase> {};

TEST_P(ResourceValidationTest, GivesTheExpectedMessage) {
  auto r = parseResources("apiVersion: offcore.io/v1\n" + GetParam().spec_yaml, "f.yaml");
  ASSERT_FALSE(r.ok()) << GetParam().spec_yaml;
  EXPECT_EQ(r.error().message, GetParam().expected);
}

INSTANTIATE_TEST_SUITE_P(
    ResourceRules, ResourceValidationTest,
    ::testing::Values(
        BadCase{"kind: Gadget\nmetadata: {name: a}\n",
                "f.yaml:2: Gadget \"a\": kind: unknown kind \"Gadget\" (use VPC, Subnet, Backend, Service or "
                "NetworkProbe)"},
        BadCase{"kind: VPC\nmetadata: {name: Bad_Name}\n",
                "f.yaml:3: VPC \"Bad_Name\": metadata.name: not a valid name (1-63 of a-z, 0-9 and '-', starting and "
                "ending alphanumeric)"},
        BadCase{"kind: VPC\nmetadata: {name: a}\nspec:\n  vni: 16777216\n",
                "f.yaml:5: VPC \"a\": spec.vni: must be 1-16777215 (got 16777216)"},
        BadCase{"kind: VPC\nmetadata: {name: default}\nspec: {vni: 5}\n",
                "f.yaml:4: VPC \"default\": spec.vni: the default VPC's vni is always 1 (got 5)"},
        BadCase{"kind: VPC\nmetadata: {name: a}\nspec:\n  vni: \"7\"\n",
                "f.yaml:5: VPC \"a\": spec.vni: must be an integer (got \"7\", quoted)"},
        BadCase{"kind: VPC\nmetadata: {name: a}\nspec:\n  color: red\n",
                "f.yaml:5: VPC \"a\": spec.color: unknown field"},
        BadCase{"kind: VPC\nmetadata: {name: a, namespace: x}\n",
                "f.yaml:3: VPC \"a\": metadata.namespace: unknown field"},
        BadCase{"kind: VPC\nmetadata:\n  name: a\n  name: b\n", "f.yaml:5: VPC \"a\": metadata.name: duplicate field"},
        BadCase{"kind: Subnet\nmetadata: {name: s}\nspec:\n  vpc: v\n",
                "f.yaml:4: Subnet \"s\": spec.cidr: required field is missing"},
        BadCase{"kind: Subnet\nmetadata: {name: s}\nspec: {cidr: 10.0.0.0/31}\n",
                "f.yaml:4: Subnet \"s\": spec.cidr: prefix length must be 8-30 (got /31)"},
        BadCase{"kind: Subnet\nmetadata: {name: s}\nspec: {cidr: 10.0.0.1/24}\n",
                "f.yaml:4: Subnet \"s\": spec.cidr: '10.0.0.1/24' has host bits set (did you mean 10.0.0.0/24?)"},
        BadCase{"kind: Subnet\nmetadata: {name: s}\nspec:\n  cidr: 10.0.0.0/24\n  gateway: 10.0.1.1\n",
                "f.yaml:6: Subnet \"s\": spec.gateway: 10.0.1.1 is not a host address of 10.0.0.0/24"},
        BadCase{"kind: Backend\nmetadata: {name: b}\nspec: {kind: pod}\n",
                "f.yaml:4: Backend \"b\": spec.pod: required field is missing"},
        BadCase{"kind: Backend\nmetadata: {name: b}\nspec:\n  kind: vm\n",
                "f.yaml:4: Backend \"b\": spec.ip: required field is missing"},
        BadCase{"kind: Backend\nmetadata: {name: b}\nspec:\n  kind: container\n",
                "f.yaml:5: Backend \"b\": spec.kind: must be pod|vm|baremetal|ip (got \"container\")"},
        BadCase{"kind: Backend\nmetadata: {name: b}\nspec: {kind: ip, ip: 10.0.0.256}\n",
                "f.yaml:4: Backend \"b\": spec.ip: must be an IPv4 address like 10.1.0.5 (got \"10.0.0.256\")"},
        BadCase{"kind: Backend\nmetadata: {name: b}\nspec:\n  kind: pod\n  pod: p\n  ip: 10.0.0.1\n",
                "f.yaml:7: Backend \"b\": spec.ip: a kind pod backend takes its address from the pod's endpoint; "
                "remove ip"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec:\n  ports: 80\n  selector: {a: b}\n",
                "f.yaml:5: Service \"s\": spec.ports: must be a non-empty list of {port, targetPort, protocol}"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80}]\n  selector: {}\n",
                "f.yaml:6: Service \"s\": spec.selector: must not be empty"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec:\n  ports:\n  - port: 80\n  - {port: 80, targetPort: 81}\n"
                "  selector: {a: b}\n",
                "f.yaml:7: Service \"s\": spec.ports[1]: port 80/TCP is listed twice"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec:\n  type: LoadBalancer\n  ports: [{port: 80}]\n"
                "  selector: {a: b}\n",
                "f.yaml:4: Service \"s\": spec.eip: required field is missing"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec:\n  scope: cluster\n  ports: [{port: 80}]\n"
                "  selector: {a: b}\n",
                "f.yaml:5: Service \"s\": spec.scope: scope cluster needs type LoadBalancer (the service gateway)"},
        BadCase{
            "kind: Service\nmetadata: {name: s}\nspec:\n  ports: [{port: 80, protocol: SCTP}]\n  selector: {a: b}\n",
            "f.yaml:5: Service \"s\": spec.ports[0].protocol: must be TCP|UDP (got \"SCTP\")"},
        BadCase{"kind: NetworkProbe\nmetadata: {name: p}\nspec: {backend: b, type: tcp, port: 80, path: /x}\n",
                "f.yaml:4: NetworkProbe \"p\": spec.path: only an http probe has a path"},
        BadCase{"kind: NetworkProbe\nmetadata: {name: p}\nspec: {backend: b, type: tcp, port: 80, intervalMs: 200, "
                "timeoutMs: 300}\n",
                "f.yaml:4: NetworkProbe \"p\": spec.timeoutMs: must be less than intervalMs (300 >= 200)"},
        BadCase{"kind: NetworkProbe\nmetadata: {name: p}\nspec: {backend: b, type: tcp, port: 80, intervalMs: 50}\n",
                "f.yaml:4: NetworkProbe \"p\": spec.intervalMs: must be 100-3600000 (got 50)"},
        BadCase{"kind: Service\nmetadata: {name: s}\nspec: [1, 2]\n",
                "f.yaml:4: Service \"s\": spec: must be a mapping (got a list)"},
        BadCase{"kind: VPC\nmetadata: {name: a}\nspec:\n  vni: [1\n",
                "f.yaml:6: YAML syntax error: end of sequence flow not found"}));

TEST(ResourceParseTest, WrongApiVersionAndMissingMetadata) {
  auto r = parseResources("apiVersion: v1\nkind: VPC\nmetadata: {name: a}\n---\napiVersion: offcore.io/v1\nkind: VPC\n",
                          "m.yaml");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error().message,
            "m.yaml:1: VPC \"a\": apiVersion: must be offcore.io/v1 (got \"v1\")\n"
            "m.yaml:5: VPC: metadata: required field is missing");
}

TEST(ResourceParseTest, HelpersRejectMalformedAddresses) {
  EXPECT_EQ(*parseIpv4("10.0.0.1"), 0x0a000001u);
  for (const char* bad : {"", "1.2.3", "1.2.3.4.5", "01.2.3.4", "1.2.3.256", "a.b.c.d", "1..2.3", "1.2.3.4 "})
    EXPECT_FALSE(parseIpv4(bad)) << bad;
  EXPECT_TRUE(parseCidr("10.0.0.0/8").ok());
  for (const char* bad : {"10.0.0.0", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/x", "10.0.0.0/123"})
    EXPECT_FALSE(parseCidr(bad).ok()) << bad;
  EXPECT_TRUE(isDnsLabel("a-1"));
  EXPECT_FALSE(isDnsLabel("-a"));
  EXPECT_FALSE(isDnsLabel(std::string(64, 'a')));
}

// --- cross-resource checks (applyToState) ---------------------------------

std::vector<Resource> docs(const std::string& yaml) {
  auto r = parseResources(yaml, "x.yaml");
  EXPECT_TRUE(r.ok()) << r.error().message;
  return r.ok() ? *r : std::vector<Resource>{};
}

std::string applyError(ClusterState& s, const std::string& yaml) {
  ClusterState before = s;
  auto r = applyToState(s, docs(yaml), "10.96.0.0/16");
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(s, before) << "a failed apply must leave the state alone";
  return r.ok() ? "" : r.error().message;
}

const char* kVpcs = R"(apiVersion: offcore.io/v1
kind: VPC
metadata: {name: a}
---
apiVersion: offcore.io/v1
kind: VPC
metadata: {name: b}
spec: {vni: 7}
)";

TEST(ResourceApplyTest, AssignsVnisAndChecksReferences) {
  ClusterState s = ClusterState::empty();
  auto r = applyToState(s, docs(kVpcs), "10.96.0.0/16");
  ASSERT_TRUE(r.ok()) << r.error().message;
  EXPECT_EQ(s.vpcs.at("a").vni, 2u);
  EXPECT_EQ(s.vpcs.at("b").vni, 7u);
  EXPECT_EQ(r->created, (std::vector<std::string>{"VPC/a", "VPC/b"}));

  EXPECT_EQ(
      applyError(
          s, "apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: s}\nspec: {vpc: nope, cidr: 10.0.0.0/24}\n"),
      "x.yaml:1: Subnet \"s\": spec.vpc: VPC \"nope\" does not exist; apply it first or in the same file");
  EXPECT_EQ(applyError(s, "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: c}\nspec: {vni: 7}\n"),
            "x.yaml:1: VPC \"c\": spec.vni: 7 is already the vni of VPC \"b\"");
  EXPECT_EQ(applyError(s, "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: a}\nspec: {vni: 9}\n"),
            "x.yaml:1: VPC \"a\": spec.vni: is immutable (stored 2, got 9); delete the VPC and apply it again to "
            "change it");
  EXPECT_EQ(applyError(s,
                       "apiVersion: offcore.io/v1\nkind: NetworkProbe\nmetadata: {name: p}\n"
                       "spec: {backend: ghost, type: tcp, port: 1}\n"),
            "x.yaml:1: NetworkProbe \"p\": spec.backend: Backend \"ghost\" does not exist; apply it first or in the "
            "same file");
  EXPECT_EQ(applyError(s, std::string(kVpcs) + "---\n" + kVpcs),
            "x.yaml:10: VPC \"a\": metadata.name: defined twice in this apply (also at x.yaml:1)\n"
            "x.yaml:14: VPC \"b\": metadata.name: defined twice in this apply (also at x.yaml:5)");
}

TEST(ResourceApplyTest, SubnetOverlapOnlyWithinAVpc) {
  ClusterState s = ClusterState::empty();
  std::string sub = "apiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: NAME}\nspec: {vpc: VPC, cidr: CIDR}\n";
  auto subnet = [&](std::string name, std::string vpc, std::string cidr) {
    std::string y = sub;
    y.replace(y.find("NAME"), 4, name);
    y.replace(y.find("VPC"), 3, vpc);
    y.replace(y.find("CIDR"), 4, cidr);
    return "---\n" + y;
  };
  ASSERT_TRUE(
      applyToState(s, docs(std::string(kVpcs) + subnet("s1", "a", "10.1.0.0/24") + subnet("s2", "b", "10.1.0.0/24")),
                   "10.96.0.0/16")
          .ok());
  EXPECT_EQ(applyError(s, subnet("s3", "a", "10.1.0.128/25")),
            "x.yaml:2: Subnet \"s3\": spec.cidr: 10.1.0.128/25 overlaps Subnet \"s1\" (10.1.0.0/24) in VPC \"a\"; "
            "subnets of one VPC must not overlap");
  EXPECT_TRUE(applyToState(s, docs(subnet("s3", "a", "10.2.0.0/16")), "10.96.0.0/16").ok());
}

// A natively routed VPC's addresses say which VPC a packet is in: they must
// overlap no other VPC's, whichever side is applied first.
TEST(ResourceApplyTest, NativeRoutingNeedsAddressesOfItsOwn) {
  ClusterState s = ClusterState::empty();
  auto subnet = [](const std::string& name, const std::string& vpc, const std::string& cidr) {
    return "---\napiVersion: offcore.io/v1\nkind: Subnet\nmetadata: {name: " + name + "}\nspec: {vpc: " + vpc +
           ", cidr: " + cidr + "}\n";
  };
  const std::string native_a = "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: a}\nspec: {routing: native}\n";
  ASSERT_TRUE(applyToState(s, docs(native_a + subnet("s1", "a", "10.1.0.0/24")), "10.96.0.0/16").ok());
  EXPECT_TRUE(s.vpcs.at("a").native());
  EXPECT_EQ(
      applyError(s, "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: b}\n" + subnet("s2", "b", "10.1.0.0/25")),
      "x.yaml:5: Subnet \"s2\": spec.cidr: 10.1.0.0/25 overlaps Subnet \"s1\" (10.1.0.0/24) of VPC \"a\", and a "
      "natively routed VPC's addresses must be its own; use other addresses or routing: tunnel");
  // Tunnel VPCs may share addresses; turning one native then may not.
  ASSERT_TRUE(
      applyToState(
          s,
          docs("apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: b}\n" + subnet("s2", "b", "10.2.0.0/24") +
               "---\napiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: c}\n" + subnet("s3", "c", "10.2.0.0/24")),
          "10.96.0.0/16")
          .ok());
  EXPECT_EQ(applyError(s, "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: b}\nspec: {routing: native}\n"),
            "x.yaml:1: VPC \"b\": spec.routing: native needs addresses of its own, but Subnet \"s2\" (10.2.0.0/24) "
            "overlaps Subnet \"s3\" (10.2.0.0/24) of VPC \"c\"");
  auto bad =
      parseResources("apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: b}\nspec: {routing: fast}\n", "x.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message, "x.yaml:4: VPC \"b\": spec.routing: must be tunnel|native (got \"fast\")");
  // Nor may a native subnet hold a node's own address.
  s.nodes["n1"] = NodeRecord{"n1", "10.77.0.10", "10.78.0.2", "02:00:00:00:00:01", "02:00:00:00:01:01"};
  EXPECT_EQ(applyError(s, "apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: d}\nspec: {routing: native}\n" +
                              subnet("s9", "d", "10.77.0.0/24")),
            "x.yaml:1: VPC \"d\": spec.routing: native, but Subnet \"s9\" (10.77.0.0/24) holds the fabric address "
            "10.77.0.10 of node \"n1\"\n"
            "x.yaml:6: Subnet \"s9\": spec.cidr: 10.77.0.0/24 holds the fabric address 10.77.0.10 of node \"n1\", and "
            "a natively routed subnet may hold no node address");
  // The default VPC keeps a routing it was given across a reload.
  ASSERT_TRUE(applyToState(
                  s, docs("apiVersion: offcore.io/v1\nkind: VPC\nmetadata: {name: default}\nspec: {routing: native}\n"),
                  "10.96.0.0/16")
                  .ok());
  auto reloaded = ClusterState::fromJson(s.toJson(), "test");
  ASSERT_TRUE(reloaded.ok()) << reloaded.error().message;
  EXPECT_TRUE(reloaded->vpcs.at("default").native());
  EXPECT_EQ(reloaded->vpcs.at("default").vni, 1u);
}

const char* kService = R"(apiVersion: offcore.io/v1
kind: Service
metadata: {name: NAME}
spec:
  vpc: VPC
  ports: [{port: 80}]
  selector: {app: web}
EXTRA)";

std::string service(std::string name, std::string vpc, std::string extra = "") {
  std::string y = kService;
  y.replace(y.find("NAME"), 4, name);
  y.replace(y.find("VPC"), 3, vpc);
  y.replace(y.find("EXTRA"), 5, extra);
  return y;
}

TEST(ResourceApplyTest, ClusterIpsAreStableAndUniquePerVpc) {
  ClusterState s = ClusterState::empty();
  ASSERT_TRUE(applyToState(s, docs(kVpcs), "10.96.0.0/16").ok());
  ASSERT_TRUE(applyToState(s, docs(service("s1", "a") + "---\n" + service("s2", "a") + "---\n" + service("s3", "b")),
                           "10.96.0.0/16")
                  .ok());
  EXPECT_EQ(s.services.at("s1").cluster_ip, "10.96.0.1");
  EXPECT_EQ(s.services.at("s2").cluster_ip, "10.96.0.2");
  EXPECT_EQ(s.services.at("s3").cluster_ip, "10.96.0.1");  // another VPC, another address space
  auto again = applyToState(s, docs(service("s2", "a")), "10.96.0.0/16");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged, std::vector<std::string>{"Service/s2"});
  EXPECT_EQ(s.services.at("s2").cluster_ip, "10.96.0.2");
  EXPECT_EQ(
      applyError(s, service("s4", "a", "  clusterIP: 10.96.0.2\n")),
      "x.yaml:1: Service \"s4\": spec.clusterIP: 10.96.0.2 is already the clusterIP of Service \"s2\" in VPC \"a\"");
  EXPECT_EQ(applyError(s, service("s5", "a", "  clusterIP: 10.96.0.9\n") + "---\n" +
                              service("s6", "b", "  type: LoadBalancer\n  eip: 192.0.2.1\n") + "---\n" +
                              service("s7", "a", "  type: LoadBalancer\n  eip: 192.0.2.1\n")),
            "x.yaml:10: Service \"s6\": spec.eip: 192.0.2.1 is already the eip of Service \"s7\"\n"
            "x.yaml:20: Service \"s7\": spec.eip: 192.0.2.1 is already the eip of Service \"s6\"");
  // A tiny service CIDR runs out with a clear message.
  ClusterState t = ClusterState::empty();
  ASSERT_TRUE(applyToState(t, docs(service("s1", "default") + "---\n" + service("s2", "default")), "10.9.0.0/30").ok());
  auto full = applyToState(t, docs(service("s3", "default")), "10.9.0.0/30");
  ASSERT_FALSE(full.ok());
  EXPECT_NE(full.error().message.find("service CIDR 10.9.0.0/30 is full in VPC \"default\""), std::string::npos);
}

TEST(ResourceApplyTest, ABulkApplyAllocatesAroundFixedAddressesWithoutGaps) {
  // One apply of many Services, some with fixed addresses in the range the
  // allocator walks: every address is distinct, none is skipped, and a
  // re-apply moves nothing.
  ClusterState s = ClusterState::empty();
  std::string yaml;
  for (int i = 0; i < 600; ++i) {
    std::string extra = i % 100 == 7 ? "  clusterIP: 10.96.0." + std::to_string(i / 100 + 3) + "\n" : "";
    yaml += (i ? "---\n" : "") + service("s" + std::to_string(i), "default", extra);
  }
  ASSERT_TRUE(applyToState(s, docs(yaml), "10.96.0.0/16").ok());
  std::set<std::string> seen;
  for (const auto& [n, svc] : s.services) EXPECT_TRUE(seen.insert(svc.cluster_ip).second) << n << " " << svc.cluster_ip;
  EXPECT_EQ(seen.size(), 600u);
  EXPECT_EQ(s.services.at("s0").cluster_ip, "10.96.0.1");
  EXPECT_EQ(s.services.at("s1").cluster_ip, "10.96.0.2");
  EXPECT_EQ(s.services.at("s2").cluster_ip, "10.96.0.9");  // .3-.8 are fixed by s7, s107, ... s507
  EXPECT_EQ(s.services.at("s7").cluster_ip, "10.96.0.3");
  EXPECT_TRUE(seen.count("10.96.2.88"));  // 600 addresses: .1 to 2.88, no gaps
  EXPECT_FALSE(seen.count("10.96.2.89"));
  ClusterState before = s;
  auto again = applyToState(s, docs(yaml), "10.96.0.0/16");
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->unchanged.size(), 600u);
  EXPECT_TRUE(s.services == before.services);
}

TEST(ResourceApplyTest, ANewServiceBeforeAReappliedOneDoesNotTakeItsAddress) {
  ClusterState s = ClusterState::empty();
  ASSERT_TRUE(applyToState(s, docs(service("old", "default")), "10.96.0.0/16").ok());
  ASSERT_EQ(s.services.at("old").cluster_ip, "10.96.0.1");
  ASSERT_TRUE(
      applyToState(s, docs(service("new", "default") + "---\n" + service("old", "default")), "10.96.0.0/16").ok());
  EXPECT_EQ(s.services.at("old").cluster_ip, "10.96.0.1");
  EXPECT_EQ(s.services.at("new").cluster_ip, "10.96.0.2");
}

TEST(ResourceApplyTest, OneProbePerBackendAndUniqueBackendAddresses) {
  ClusterState s = ClusterState::empty();
  std::string b = "apiVersion: offcore.io/v1\nkind: Backend\nmetadata: {name: NAME}\nspec: {kind: vm, ip: 10.5.0.1}\n";
  std::string b1 = b, b2 = b;
  b1.replace(b1.find("NAME"), 4, "b1");
  b2.replace(b2.find("NAME"), 4, "b2");
  ASSERT_TRUE(applyToState(s, docs(b1), "10.96.0.0/16").ok());
  EXPECT_EQ(applyError(s, b2),
            "x.yaml:1: Backend \"b2\": spec.ip: 10.5.0.1 is already the address of Backend \"b1\" in "
            "VPC \"default\"");
  std::string p =
      "apiVersion: offcore.io/v1\nkind: NetworkProbe\nmetadata: {name: NAME}\nspec: {backend: b1, type: tcp, port: "
      "22}\n";
  std::string p1 = p, p2 = p;
  p1.replace(p1.find("NAME"), 4, "p1");
  p2.replace(p2.find("NAME"), 4, "p2");
  ASSERT_TRUE(applyToState(s, docs(p1), "10.96.0.0/16").ok());
  EXPECT_EQ(applyError(s, p2),
            "x.yaml:1: NetworkProbe \"p2\": spec.backend: Backend \"b1\" already has NetworkProbe "
            "\"p1\" (at most one per backend)");
}

}  // namespace
}  // namespace offcore::svc

namespace offcore::svc {
namespace {

// A clusterIP or EIP that is somebody else's address hijacks its traffic: an
// EIP equal to the storage gateway's fabric address took the node's disk.
TEST(ResourceApplyTest, ServiceAddressesThatCollideAreRefused) {
  ClusterState s = ClusterState::empty();
  ASSERT_TRUE(applyToState(s,
                           docs(std::string(kVpcs) + "---\napiVersion: offcore.io/v1\nkind: Subnet\n"
                                                     "metadata: {name: s1}\nspec: {vpc: a, cidr: 10.1.0.0/24}\n"),
                           "10.96.0.0/16")
                  .ok());
  s.nodes["n1"] = NodeRecord{"n1", "10.77.0.10/16", "10.78.0.2/30", "02:00:00:00:00:01", ""};
  Endpoint e;
  e.id = "n1/c1/eth0";
  e.node = "n1";
  e.pod_name = "web-0";
  e.vpc = "a";
  e.subnet = "s1";
  e.ip = "10.1.0.5";
  e.prefix_len = 24;
  s.endpoints[e.id] = e;
  auto refused = [&](const std::string& yaml, const AddressPlan& plan) {
    ClusterState before = s;
    auto r = applyToState(s, docs(yaml), plan);
    if (r.ok()) {
      s = before;
      return std::string("accepted");
    }
    EXPECT_EQ(s, before);
    return r.error().message;
  };
  AddressPlan plan("10.96.0.0/16", "10.77.128.0/17");
  EXPECT_EQ(refused(service("l1", "a", "  type: LoadBalancer\n  eip: 10.77.1.5\n"), plan),
            "x.yaml:1: Service \"l1\": spec.eip: 10.77.1.5 is outside the EIP pool 10.77.128.0/17 (config eip_pool)");
  EXPECT_EQ(refused(service("c1", "a", "  clusterIP: 10.1.0.5\n"), plan),
            "x.yaml:1: Service \"c1\": spec.clusterIP: 10.1.0.5 is outside the service CIDR 10.96.0.0/16 (config "
            "service_cidr)");
  // With wide ranges, what is inside them is still checked.
  AddressPlan wide("10.0.0.0/8", "10.0.0.0/8");
  EXPECT_EQ(refused(service("l2", "a", "  type: LoadBalancer\n  eip: 10.77.0.10\n"), wide),
            "x.yaml:1: Service \"l2\": spec.eip: 10.77.0.10 is node \"n1\"'s fabric address");
  EXPECT_EQ(refused(service("c2", "a", "  clusterIP: 10.1.0.5\n"), wide),
            "x.yaml:1: Service \"c2\": spec.clusterIP: 10.1.0.5 is the address of pod \"web-0\"");
  EXPECT_EQ(refused(service("c3", "a", "  clusterIP: 10.1.0.77\n"), wide),
            "x.yaml:1: Service \"c3\": spec.clusterIP: 10.1.0.77 is inside Subnet \"s1\" (10.1.0.0/24), where pods get "
            "addresses");
  // The same address in another VPC is no conflict for a clusterIP.
  EXPECT_EQ(refused(service("c4", "b", "  clusterIP: 10.1.0.5\n"), wide), "accepted");
  EXPECT_EQ(refused(service("l3", "a", "  type: LoadBalancer\n  eip: 10.77.200.9\n"), plan), "accepted");
}

}  // namespace
}  // namespace offcore::svc

namespace offcore::svc {
namespace {

TEST(ResourceParseTest, AppProtocolIsParsedCheckedAndStored) {
  const std::string head =
      "apiVersion: offcore.io/v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n";
  auto r = parseResources(head +
                              "  ports:\n  - {port: 80, appProtocol: http}\n  - {port: 81, appProtocol: grpc}\n"
                              "  - {port: 82}\n",
                          "a.yaml");
  ASSERT_TRUE(r.ok()) << r.error().message;
  const auto& s = std::get<Service>((*r)[0].value);
  EXPECT_EQ(s.ports[0].app_protocol, "http");
  EXPECT_EQ(s.ports[1].app_protocol, "grpc");
  EXPECT_EQ(s.ports[2].app_protocol, "") << "absent = sniff";
  auto back = serviceFromJson(toJson(s), "s");
  ASSERT_TRUE(back.ok()) << back.error().message;
  EXPECT_EQ(*back, s);
  // A state.json written before appProtocol existed still reads.
  auto j = toJson(s);
  j["ports"][0].erase("appProtocol");
  auto old = serviceFromJson(j, "s");
  ASSERT_TRUE(old.ok());
  EXPECT_EQ(old->ports[0].app_protocol, "");

  auto bad = parseResources(head + "  ports:\n  - {port: 80, appProtocol: HTTP/1.1}\n", "b.yaml");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error().message,
            "b.yaml:7: Service \"web\": spec.ports[0].appProtocol: must be http|http2|grpc|tcp (got \"HTTP/1.1\")");
  auto udp = parseResources(head + "  ports:\n  - {port: 53, protocol: UDP, appProtocol: tcp}\n", "u.yaml");
  ASSERT_FALSE(udp.ok());
  EXPECT_NE(udp.error().message.find("only a TCP port has an appProtocol"), std::string::npos);
}

}  // namespace
}  // namespace offcore::svc
