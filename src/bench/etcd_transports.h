// offcore's two etcd KvClients, over etcd's HTTP/JSON gateway and over its
// gRPC API: the same calls to the same member, alternating, for
// `offcore bench control-plane`: which wire measures better (gRPC, the default).
#pragma once

#include <string>

#include "base/result.h"

namespace offcore::bench {

struct TransportFigures {
  size_t keys = 0, bytes = 0;                      // what one range of the prefix returned
  double gateway_range_ms = 0, grpc_range_ms = 0;  // medians, answer decoded into keys and values
  double gateway_put_ms = 0, grpc_put_ms = 0;      // one key, one round trip each
};

// member: "http://host:port". Ranges the prefix `rounds` times and puts
// 20 x rounds keys under scratch_prefix with each transport.
Result<TransportFigures> compareEtcdTransports(const std::string& member, const std::string& prefix,
                                               const std::string& scratch_prefix, int rounds);

}  // namespace offcore::bench
