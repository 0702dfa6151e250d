// Default makeRemoteSource: no remote layers (see remote_source_factory.h).
#include "snapshotter/remote_source_factory.h"

namespace offcore {

Result<std::unique_ptr<RemoteSource>> makeRemoteSource(const RemoteSourceConfig&) {
  return std::unique_ptr<RemoteSource>();
}

}  // namespace offcore
