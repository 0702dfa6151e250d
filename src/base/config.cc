#include "base/config.h"

#include <cstdlib>
#include <nlohmann/json.hpp>

#include "base/files.h"

namespace offcore {

Result<Config> parseConfig(const std::string& json_text, const std::string& origin) {
  Config cfg;
  auto doc = nlohmann::json::parse(json_text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return makeError(origin + ": not a JSON object");
  }
  auto readString = [&](const char* key, std::string& into) -> Status {
    if (!doc.contains(key)) return okStatus();
    if (!doc[key].is_string()) return makeError(origin + ": field '" + key + "' must be a string");
    into = doc[key].get<std::string>();
    return okStatus();
  };
  OC_TRY(readString("run_root", cfg.run_root));
  OC_TRY(readString("cgroup_root", cfg.cgroup_root));
  OC_TRY(readString("fabric_netns", cfg.fabric_netns));
  OC_TRY(readString("fabric_prefix", cfg.fabric_prefix));
  OC_TRY(readString("host_link_prefix", cfg.host_link_prefix));
  OC_TRY(readString("log_level", cfg.log_level));
  OC_TRY(readString("cluster_dir", cfg.cluster_dir));
  OC_TRY(readString("cluster_store", cfg.cluster_store));
  OC_TRY(readString("etcd_ca_file", cfg.etcd_ca_file));
  OC_TRY(readString("etcd_cert_file", cfg.etcd_cert_file));
  OC_TRY(readString("etcd_key_file", cfg.etcd_key_file));
  OC_TRY(readString("etcd_user", cfg.etcd_user));
  OC_TRY(readString("etcd_password_file", cfg.etcd_password_file));
  OC_TRY(readString("etcd_wire", cfg.etcd_wire));
  OC_TRY(readString("mesh_ca_etcd_user", cfg.mesh_ca_etcd_user));
  OC_TRY(readString("mesh_ca_etcd_password_file", cfg.mesh_ca_etcd_password_file));
  if (cfg.mesh_ca_etcd_user.empty() != cfg.mesh_ca_etcd_password_file.empty())
    return makeError(origin +
                     ": mesh_ca_etcd_user and mesh_ca_etcd_password_file go together (the mesh CA's etcd user)");
  if (cfg.etcd_wire != "grpc" && cfg.etcd_wire != "gateway")
    return makeError(origin +
                     ": field 'etcd_wire' must be \"grpc\" (the default) or \"gateway\" (etcd's HTTP/JSON gateway)");
  if (cfg.etcd_user.empty() != cfg.etcd_password_file.empty())
    return makeError(origin + ": etcd_user and etcd_password_file go together (etcd authentication)");
  if (!cfg.cluster_store.empty() && cfg.cluster_store.rfind("etcd://", 0) != 0)
    return makeError(origin + ": field 'cluster_store' must be \"\" (cluster_dir) or etcd://host:port[,host:port...]");
  if (cfg.etcd_ca_file.empty() && (!cfg.etcd_cert_file.empty() || !cfg.etcd_key_file.empty()))
    return makeError(origin + ": etcd_cert_file and etcd_key_file need etcd_ca_file (client TLS)");
  OC_TRY(readString("service_cidr", cfg.service_cidr));
  OC_TRY(readString("eip_pool", cfg.eip_pool));
  auto readMs = [&](const char* key, int& into) -> Status {
    if (!doc.contains(key)) return okStatus();
    if (!doc[key].is_number_integer() || doc[key].get<int64_t>() <= 0 || doc[key].get<int64_t>() > 3600000)
      return makeError(origin + ": field '" + key + "' must be a positive integer (milliseconds)");
    into = doc[key].get<int>();
    return okStatus();
  };
  OC_TRY(readMs("agent_ready_timeout_ms", cfg.agent_ready_timeout_ms));
  OC_TRY(readMs("heartbeat_interval_ms", cfg.heartbeat_interval_ms));
  OC_TRY(readMs("node_expiry_ms", cfg.node_expiry_ms));
  if (doc.contains("rx_steering")) {
    if (!doc["rx_steering"].is_boolean()) return makeError(origin + ": field 'rx_steering' must be true or false");
    cfg.rx_steering = doc["rx_steering"].get<bool>();
  }
  if (doc.contains("rx_steering_mode")) {
    const auto& m = doc["rx_steering_mode"];
    if (!m.is_string() || (m.get<std::string>() != "napi" && m.get<std::string>() != "rps"))
      return makeError(origin + ": field 'rx_steering_mode' must be \"napi\" or \"rps\"");
    cfg.rx_steering_mode = m.get<std::string>();
  }
  if (cfg.node_expiry_ms <= cfg.heartbeat_interval_ms)
    return makeError(origin + ": node_expiry_ms must exceed heartbeat_interval_ms (a few beats, e.g. 5000 and 1000)");
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    static const char* known[] = {"run_root",
                                  "cgroup_root",
                                  "fabric_netns",
                                  "fabric_prefix",
                                  "host_link_prefix",
                                  "log_level",
                                  "agent_ready_timeout_ms",
                                  "cluster_dir",
                                  "service_cidr",
                                  "eip_pool",
                                  "heartbeat_interval_ms",
                                  "node_expiry_ms",
                                  "rx_steering",
                                  "rx_steering_mode",
                                  "cluster_store",
                                  "etcd_ca_file",
                                  "etcd_cert_file",
                                  "etcd_key_file",
                                  "etcd_user",
                                  "etcd_password_file",
                                  "etcd_wire",
                                  "mesh_ca_etcd_user",
                                  "mesh_ca_etcd_password_file"};
    bool ok = false;
    for (const char* k : known) ok = ok || it.key() == k;
    if (!ok) return makeError(origin + ": unknown field '" + it.key() + "'");
  }
  if (cfg.eip_pool.empty()) cfg.eip_pool = cfg.fabric_prefix + ".128.0/17";
  return cfg;
}

Result<Config> loadConfig() {
  const char* env = std::getenv("OFFCORE_CONFIG");
  std::string path = env ? env : "/etc/offcore/config.json";
  if (!pathExists(path)) {
    if (env) return makeError("OFFCORE_CONFIG names " + path + ", which does not exist");
    return parseConfig("{}", "the embedded defaults");
  }
  OC_ASSIGN_OR_RETURN(std::string text, readFile(path));
  return parseConfig(text, path);
}

}  // namespace offcore
