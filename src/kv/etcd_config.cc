#include "kv/etcd_config.h"

#include <sys/stat.h>

#include "base/files.h"

namespace offcore::kv {

Result<EtcdOptions> etcdOptionsFor(const Config& config, const std::string& url) {
  OC_ASSIGN_OR_RETURN(EtcdOptions o, parseEtcdUrl(url, !config.etcd_ca_file.empty()));
  OC_ASSIGN_OR_RETURN(o.wire, parseEtcdWire(config.etcd_wire));
  o.ca_file = config.etcd_ca_file;
  o.cert_file = config.etcd_cert_file;
  o.key_file = config.etcd_key_file;
  if (!config.etcd_user.empty()) {
    struct stat st {};
    if (::stat(config.etcd_password_file.c_str(), &st) != 0)
      return errnoError("etcd_password_file " + config.etcd_password_file);
    if (st.st_mode & 077)
      return makeError("etcd_password_file " + config.etcd_password_file +
                       " is readable by others; chmod 600 it (it holds etcd user " + config.etcd_user + "'s password)");
    OC_ASSIGN_OR_RETURN(std::string password, readFile(config.etcd_password_file));
    while (!password.empty() && (password.back() == '\n' || password.back() == '\r')) password.pop_back();
    o.user = config.etcd_user;
    o.password = std::move(password);
  }
  return o;
}

}  // namespace offcore::kv
