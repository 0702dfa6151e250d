#!/usr/bin/env bash
# Accounting is right: CPU placed in one domain is charged to it, not the other.
source "$(dirname "$0")/lib.sh"
N=ac$ID
netns_add "h$N"
node_up "$N" --host-netns "h$N"

cpu() { status_field "$N" ".domains.$1.cpu_seconds"; }
burn() { oc dpu exec --name "$N" --domain "$1" -- timeout 2 sh -c 'while :; do :; done' || [ $? -eq 124 ]; }

step "2 s busy loop in the SoC"
soc0=$(cpu soc); host0=$(cpu host)
burn soc
soc1=$(cpu soc); host1=$(cpu host)
dsoc=$(awk -v a="$soc0" -v b="$soc1" 'BEGIN{print b-a}')
dhost=$(awk -v a="$host0" -v b="$host1" 'BEGIN{print b-a}')
echo "soc +$dsoc s, host +$dhost s"
assert_cmp "$dsoc" ">=" 1.5 "soc cpu_seconds after a soc burn"
assert_cmp "$dhost" "<=" 0.2 "host cpu_seconds after a soc burn"

step "2 s busy loop on the host"
soc0=$(cpu soc); host0=$(cpu host)
burn host
soc1=$(cpu soc); host1=$(cpu host)
dsoc=$(awk -v a="$soc0" -v b="$soc1" 'BEGIN{print b-a}')
dhost=$(awk -v a="$host0" -v b="$host1" 'BEGIN{print b-a}')
echo "soc +$dsoc s, host +$dhost s"
assert_cmp "$dhost" ">=" 1.5 "host cpu_seconds after a host burn"
assert_cmp "$dsoc" "<=" 0.2 "soc cpu_seconds after a host burn"

step "memory is charged to the domain that allocates it"
m0=$(status_field "$N" .domains.soc.memory_bytes)
oc dpu exec --name "$N" --domain soc -- sh -c 'head -c 64M /dev/zero > /dev/shm/oc-acct-'"$ID"'; sleep 0.2'
m1=$(status_field "$N" .domains.soc.memory_bytes)
rm -f "/dev/shm/oc-acct-$ID"
echo "soc memory $m0 -> $m1 bytes"
assert_cmp "$m1" ">=" $(( m0 + 60 * 1024 * 1024 )) "soc memory after writing 64M to shm"
