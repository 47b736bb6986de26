#!/bin/sh
# Run by busybox `uevent` for each kernel uevent: report hot-plugged disks on the console.
if [ "$SUBSYSTEM" = net ] && [ -n "$INTERFACE" ] && [ "$INTERFACE" != lo ]; then
    # a hot-plugged network interface: up, and its address by DHCP (in the background)
    [ "$ACTION" = add ] || exit 0
    echo "nimbo-init: nic added $INTERFACE mac $(cat "/sys/class/net/$INTERFACE/address" 2>/dev/null)" >/dev/console
    ifconfig "$INTERFACE" up
    udhcpc -i "$INTERFACE" -s /etc/nimbo/udhcpc.script -q -n -t 10 -T 1 >/dev/null 2>&1 </dev/null &
    exit 0
fi
[ "$SUBSYSTEM" = block ] && [ "$DEVTYPE" = disk ] || exit 0
case "$ACTION" in
    add) echo "nimbo-init: disk added $DEVNAME serial $(cat "/sys/block/$DEVNAME/serial" 2>/dev/null)" >/dev/console ;;
    remove) echo "nimbo-init: disk removed $DEVNAME" >/dev/console ;;
esac
exit 0
