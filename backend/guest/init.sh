#!/bin/sh
# Nimbo tiny guest: PID 1, first in the initramfs built by backend/tiny_image.py, then (after
# switch_root) on the root volume. Every step writes a "nimbo-init: ..." line to the serial
# console (console=ttyS0).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
IMDS=169.254.169.254
TOKEN=

say() { echo "nimbo-init: $*"; }
# The last line before a power-off goes through the kernel's log (level 2, shown despite
# "quiet"): printk reaches the serial port at once, while a tty write may still sit in the
# UART's buffer when the machine powers off.
last() { echo "<2>nimbo-init: $*" >/dev/kmsg 2>/dev/null || say "$*"; }

# busybox halt/poweroff/reboot without -f signal PID 1: USR1/USR2/TERM.
trap 'last "power off"; sync; mount -o remount,ro / 2>/dev/null; poweroff -f' USR1 USR2
trap 'last "reboot"; sync; mount -o remount,ro / 2>/dev/null; reboot -f' TERM INT

if [ "$1" != stage2 ]; then
    mount -t proc proc /proc
    mount -t sysfs sysfs /sys
    mount -t devtmpfs devtmpfs /dev 2>/dev/null
    say "userspace up at $(cut -d' ' -f1 /proc/uptime)s"

    DEBUG=
    grep -q nimbo.debug /proc/cmdline && DEBUG=1
    for m in $(cat /etc/nimbo/modules); do
        insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
        [ -n "$DEBUG" ] && say "insmod $m done at $(cut -d' ' -f1 /proc/uptime)s"
    done

    for d in /sys/block/vd*; do
        [ -e "$d" ] && say "disk ${d##*/} serial $(cat "$d/serial" 2>/dev/null)"
    done

    # The root volume is the first virtio disk: formatted (ext2) when blank, then it becomes /,
    # so that what is written survives a stop/start. Unknown content is never formatted.
    ROOTDEV=/dev/vda
    if [ -b "$ROOTDEV" ] && ! grep -q nimbo.noroot /proc/cmdline; then
        magic=$(dd if="$ROOTDEV" bs=1 skip=1080 count=2 2>/dev/null | od -An -tx1 | tr -d ' \n')
        if [ "$magic" != 53ef ]; then
            if [ -z "$(dd if="$ROOTDEV" bs=65536 count=1 2>/dev/null | tr -d '\000' | head -c 1)" ]; then
                mke2fs -q -L nimbo-root "$ROOTDEV" >/dev/null 2>&1 && say "root volume ${ROOTDEV#/dev/} formatted" \
                    || say "root volume ${ROOTDEV#/dev/} could not be formatted"
            else
                say "root volume ${ROOTDEV#/dev/} holds something else: not mounted"
            fi
        fi
        if mount -t ext4 "$ROOTDEV" /newroot 2>/dev/null || mount -t ext2 "$ROOTDEV" /newroot 2>/dev/null; then
            # the image's own files are refreshed when the image changed; /etc, /root and the
            # rest keep what the guest wrote
            if [ "$(cat /newroot/etc/nimbo/recipe 2>/dev/null)" != "$(cat /etc/nimbo/recipe)" ]; then
                mkdir -p /newroot/etc
                for f in bin sbin usr lib lib64 init etc/nimbo; do
                    [ -e "/$f" ] || continue
                    rm -rf "/newroot/$f"
                    cp -a "/$f" "/newroot/$f"
                done
                for f in /etc/*; do
                    [ -e "/newroot$f" ] || cp -a "$f" "/newroot$f"
                done
            fi
            for f in dev proc sys tmp run root var var/lib/nimbo var/log; do mkdir -p "/newroot/$f"; done
            chmod 1777 /newroot/tmp
            chmod 700 /newroot/root
            say "root volume ${ROOTDEV#/dev/} mounted"
            mount --move /dev /newroot/dev
            mount --move /proc /newroot/proc
            mount --move /sys /newroot/sys
            exec switch_root /newroot /init stage2
        fi
        say "root volume ${ROOTDEV#/dev/} not mounted: running from the initramfs"
    fi
fi

mkdir -p /dev/pts /tmp /run /root /var/lib/nimbo /var/log
mount -t devpts devpts /dev/pts 2>/dev/null
mount -t tmpfs tmpfs /run 2>/dev/null

# ACPI power button (QMP system_powerdown): the first input event powers the guest off.
for ev in /sys/class/input/event*; do
    [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
    dev=/dev/input/${ev##*/}
    ( dd if="$dev" of=/dev/null bs=24 count=1 2>/dev/null && kill -USR2 1 ) &
done

uevent /etc/nimbo/uevent >/dev/null 2>&1 &

ifconfig lo 127.0.0.1 up
ifconfig eth0 up 2>/dev/null || say "no eth0"
udhcpc -i eth0 -s /etc/nimbo/udhcpc.script -q -f -n -t 5 -T 1 >/dev/null 2>&1 \
    || say "dhcp failed"

# http METHOD PATH [HEADER]: HTTP/1.0 to the metadata service with busybox nc; body on
# stdout; success only for status 200.
http() {
    resp=/tmp/http.$$
    {
        printf '%s %s HTTP/1.0\r\nHost: %s\r\n' "$1" "$2" "$IMDS"
        [ -n "$3" ] && printf '%s\r\n' "$3"
        [ -n "$TOKEN" ] && printf 'X-aws-ec2-metadata-token: %s\r\n' "$TOKEN"
        [ "$1" = PUT ] && printf 'Content-Length: 0\r\n'
        printf '\r\n'
    } | nc -w 10 "$IMDS" 80 >"$resp" 2>/dev/null
    code=$(head -n 1 "$resp" | cut -d' ' -f2)
    end=$(awk '/^\r?$/ { print NR; exit }' "$resp")
    [ -n "$end" ] && tail -n +"$((end + 1))" "$resp"
    rm -f "$resp"
    [ "$code" = 200 ]
}

if TOKEN=$(http PUT /latest/api/token 'X-aws-ec2-metadata-token-ttl-seconds: 21600') && [ -n "$TOKEN" ]; then
    say "imds v2 token acquired"
else
    TOKEN=
    say "imds v2 unavailable, falling back to v1"
fi

ID=
for i in 1 2 3; do
    ID=$(http GET /latest/meta-data/instance-id) && break
    ID=
    sleep 1
done
if [ -n "$ID" ]; then
    say "instance-id $ID"
    [ -s /run/dhcp-hostname ] || hostname "$ID"   # DHCP's host name (tap networking) wins
else
    say "instance-id unavailable"
fi

if http GET /latest/meta-data/public-keys/0/openssh-key >/tmp/key && [ -s /tmp/key ]; then
    mkdir -p /root/.ssh && chmod 700 /root/.ssh
    mv /tmp/key /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
    say "ssh key installed: $(cut -d' ' -f1 /root/.ssh/authorized_keys | head -n 1)"
else
    say "no ssh key"
fi

UD=/var/lib/nimbo/user-data
if http GET /latest/user-data >"$UD" && [ -s "$UD" ]; then
    if [ "$(head -c 2 "$UD")" = '#!' ]; then
        chmod +x "$UD"
        say "running user-data"
        # in the background, so that signals (poweroff from the script) reach PID 1 at once
        "$UD" </dev/null &
        wait $!
        say "user-data exit $?"
    else
        say "user-data is not a script ($(wc -c <"$UD") bytes), not run"
    fi
else
    say "no user-data"
fi

# the ssh server (dropbear): root with the key pair's key only; host keys made on first use and
# kept on the root volume
if command -v dropbear >/dev/null 2>&1; then
    mkdir -p /etc/dropbear
    if dropbear -R -s -p 22 -P /run/dropbear.pid -E 2>>/var/log/dropbear.log; then
        say "ssh server up at $(cut -d' ' -f1 /proc/uptime)s"
    else
        say "ssh server failed"
    fi
else
    say "no ssh server in this image"
fi

say "ready at $(cut -d' ' -f1 /proc/uptime)s"
while :; do
    sleep 3600 &
    wait $!
done
