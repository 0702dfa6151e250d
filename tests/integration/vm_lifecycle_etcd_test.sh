#!/usr/bin/env bash
# The VM lifecycle (vm_lifecycle_test.sh) with the VM records in a 3-member
# etcd on fabric hosts instead of the cluster directory.
OC_CLUSTER_STORE=etcd exec bash "$(dirname "$0")/vm_lifecycle_test.sh"
