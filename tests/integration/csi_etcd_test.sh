#!/usr/bin/env bash
# The CSI driver's end-to-end cases (csi_test.sh) with the cluster state in
# a 3-member etcd on fabric hosts: the replicated volumes' records, their
# nexus journals and claims, and the CSI catalog are keys in etcd.
OC_CLUSTER_STORE=etcd exec bash "$(dirname "$0")/csi_test.sh"
