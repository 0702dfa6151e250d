#!/bin/sh
# /init of the guest kit (scripts/guest/kit.sh): loads the modules, mounts
# proc/sys/dev, runs /test.sh if a layer put one there, reports its exit
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
