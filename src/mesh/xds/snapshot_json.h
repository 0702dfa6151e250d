// A Snapshot as JSON, for `offcore mesh xds-dump` and tests: services with
// ports and endpoints, VirtualServices and DestinationRules (the parts the
// xDS client fills in).
#pragma once

#include <nlohmann/json.hpp>

#include "mesh/xds/ads_state.h"

namespace offcore::mesh::xds {

nlohmann::json snapshotToJson(const Snapshot& s);
nlohmann::json updateToJson(const XdsUpdate& u);  // {"versions": ..., "snapshot": ...}

}  // namespace offcore::mesh::xds
