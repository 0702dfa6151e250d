#!/usr/bin/env bash
# The Service scenarios (svc_scenarios_test.sh) with every VPC natively
# routed: pod subnets routed between the nodes' SoCs on the fabric, no VXLAN.
OC_ROUTING=native exec bash "$(dirname "$0")/svc_scenarios_test.sh"
