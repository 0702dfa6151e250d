// offcore-cni reads its network configuration from stdin and CNI_* from the
// environment, both chosen by whatever execs it: bad bytes must become a CNI
// error, never a crash. The input's first line is CNI_ARGS, the rest stdin.
#include <cstddef>
#include <cstdint>
#include <string>

#include "cni/cni_config.h"
#include "cni/cni_result.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace offcore;
  std::string text(reinterpret_cast<const char*>(data), size);
  size_t nl = text.find('\n');
  std::string args = nl == std::string::npos ? "" : text.substr(0, nl);
  std::string config = nl == std::string::npos ? text : text.substr(nl + 1);

  auto env = parseCniEnv({{"CNI_COMMAND", "ADD"},
                          {"CNI_CONTAINERID", "c1"},
                          {"CNI_IFNAME", "eth0"},
                          {"CNI_NETNS", "/var/run/netns/p"},
                          {"CNI_ARGS", args}});
  (void)renderCniError(cniReplyVersion(config), 7, env.ok() ? env->pod_name : env.error().message);
  auto conf = parseCniNetConf(config, "/run/offcore");
  if (!conf.ok()) return 0;
  // A parsed prevResult flows into the ADD result and the CHECK comparison.
  CniEndpoint ep{"eth0", "02:00:00:00:00:01", "/var/run/netns/p", "10.1.0.5/24", "169.254.1.1"};
  (void)renderCniAddResult(conf->cni_version, ep, conf->prev_result);
  (void)checkPrevResult(conf->prev_result, "eth0", ep);
  (void)parseAgentEndpoint(config);
  return 0;
}
