// offcore-csi-sanity: the CSI conformance cases (sanity_cases.cc) against a
// running plugin pair.
//   offcore-csi-sanity --controller SOCK --node SOCK --work-dir DIR
//                      [--real-mounts] [--other-node ID] [--param K=V]... [--size BYTES]
//                      [--unplaceable-replicas N] [--between SHELL-COMMAND]
//                      [gtest flags]
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <iostream>

#include "sanity.h"

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  auto& t = offcore::test::sanityTarget();
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "offcore-csi-sanity: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--controller") {
      t.controller = next();
    } else if (a == "--node") {
      t.node = next();
    } else if (a == "--work-dir") {
      t.work_dir = next();
    } else if (a == "--real-mounts") {
      t.real_mounts = true;
    } else if (a == "--other-node") {
      t.other_node = next();
    } else if (a == "--between") {
      t.between = next();
    } else if (a == "--unplaceable-replicas") {
      t.unplaceable_replicas = std::atoi(next().c_str());
    } else if (a == "--size") {
      t.volume_bytes = std::atoll(next().c_str());
    } else if (a == "--param") {
      std::string kv = next();
      auto eq = kv.find('=');
      if (eq == std::string::npos) {
        std::cerr << "offcore-csi-sanity: --param K=V\n";
        return 2;
      }
      t.parameters[kv.substr(0, eq)] = kv.substr(eq + 1);
    } else {
      std::cerr << "offcore-csi-sanity: unknown argument " << a << "\n";
      return 2;
    }
  }
  if (t.controller.empty() || t.node.empty() || t.work_dir.empty()) {
    std::cerr << "offcore-csi-sanity: give --controller SOCK --node SOCK --work-dir DIR\n";
    return 2;
  }
  return RUN_ALL_TESTS();
}
