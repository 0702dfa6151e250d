#!/usr/bin/env bash
# Issue 13: vm_blk_kill_test.sh with the VM's disk on a packed virtqueue
# (`vm create --disk-ring packed`, QEMU's packed=on): kill -9 of the back end
# under guest fio, three times, each with requests in flight in the packed
# inflight region; every restart resubmits them, fio ends with 0 errors and
# the guest logs no I/O error. The guest must report RING_PACKED.
OC_DISK_RING=packed exec bash "$(dirname "$0")/vm_blk_kill_test.sh"
