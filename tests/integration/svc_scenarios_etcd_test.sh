#!/usr/bin/env bash
# The Service scenarios (svc_scenarios_test.sh) with the cluster state in a
# 3-member etcd cluster on three fabric hosts instead of a directory: the
# agents watch it from their SoCs over the fabric, the CLI reaches it
# through node a's SoC.
OC_CLUSTER_STORE=etcd exec bash "$(dirname "$0")/svc_scenarios_test.sh"
