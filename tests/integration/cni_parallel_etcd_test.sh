#!/usr/bin/env bash
# 200 CNI ADDs at once over two nodes whose cluster state is a 3-member etcd
# cluster (issue 18's concurrency test): no address twice, checked in etcd.
OC_CLUSTER_STORE=etcd OC_CNI_PODS=200 OC_CNI_NODES=2 exec bash "$(dirname "$0")/cni_parallel_test.sh"
