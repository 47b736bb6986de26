#!/bin/sh
# Run by busybox `uevent` for each kernel uevent: report hot-plugged disks on the console.
[ "$SUBSYSTEM" = block ] && [ "$DEVTYPE" = disk ] || exit 0
case "$ACTION" in
    add) echo "nimbo-init: disk added $DEVNAME serial $(cat "/sys/block/$DEVNAME/serial" 2>/dev/null)" >/dev/console ;;
    remove) echo "nimbo-init: disk removed $DEVNAME" >/dev/console ;;
esac
exit 0
