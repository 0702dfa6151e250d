#!/bin/sh
# /init of the guest kit (scripts/guest/kit.sh): loads the modules, mounts
# proc/sys/dev, sets up eth0 from offcore.ip/gw/mtu on the kernel command
# line, runs /test.sh if a layer put one there, reports its exit
# status on the console and powers off. Never returns: the kernel would panic.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
while read -r m; do
  insmod "/lib/modules/$m.ko" || echo "KIT: insmod $m failed"
done </lib/modules/load.order
# Give the virtio drivers a moment to bind (vda or eth0 appear), when there
# is a virtio device at all.
if [ -n "$(find /sys/bus/virtio/devices -mindepth 1 -maxdepth 1 2>/dev/null)" ]; then
  for _ in $(seq 50); do
    if [ -e /dev/vda ] || [ -e /sys/class/net/eth0 ]; then break; fi
    sleep 0.1
  done
fi
# A NIC from `offcore vm create --net`: its address is on the kernel command
# line (offcore.ip=IP/32 offcore.gw=GW offcore.mtu=MTU). eth0 gets a /32
# with an on-link route to the gateway, as pods have; /test.sh sees the
# values as OC_IP, OC_GW, OC_MTU.
for kv in $(cat /proc/cmdline); do
  case "$kv" in
    offcore.ip=*) OC_IP=${kv#*=} ;;
    offcore.gw=*) OC_GW=${kv#*=} ;;
    offcore.mtu=*) OC_MTU=${kv#*=} ;;
  esac
done
export OC_IP OC_GW OC_MTU
if [ -n "$OC_IP" ] && [ -n "$OC_GW" ]; then
  for _ in $(seq 50); do
    [ -e /sys/class/net/eth0 ] && break
    sleep 0.1
  done
  ip link set lo up
  if ip link set eth0 mtu "${OC_MTU:-1450}" up && ip addr add "$OC_IP" dev eth0 &&
    ip route add "$OC_GW" dev eth0 && ip route add default via "$OC_GW" dev eth0; then
    echo "KIT-NET eth0 $OC_IP via $OC_GW"
  else
    echo "KIT: eth0 could not be set up from offcore.ip/offcore.gw"
  fi
fi
echo "KIT-BOOTED $(cat /etc/kit-release)"
if [ -x /test.sh ]; then
  /test.sh
  rc=$?
else
  echo "KIT: no /test.sh in the initrd"
  rc=127
fi
echo "KIT-RESULT rc=$rc"
sync
poweroff -f
