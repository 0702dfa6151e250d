#!/bin/sh
# /init of the guest kit (scripts/guest/kit.sh): loads the modules, mounts
# proc/sys/dev, runs /test.sh if a layer put one there, reports its exit
# status on the console and powers off. Never returns: the kernel would panic.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
for m in $(cat /lib/modules/load.order); do
  insmod "/lib/modules/$m.ko" || echo "KIT: insmod $m failed"
done
# Let the drivers bind their devices before the test looks for /dev/vda.
for _ in $(seq 50); do
  [ -e /dev/vda ] || [ -e /sys/class/net/eth0 ] && break
  ls /sys/bus/virtio/devices/ 2>/dev/null | grep -q . || break
  sleep 0.1
done
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
