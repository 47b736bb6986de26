#!/bin/sh
# Nimbo tiny guest: PID 1 of the initramfs built by backend/tiny_image.py.
# Every step writes a "nimbo-init: ..." line to the serial console (console=ttyS0).
export PATH=/sbin:/bin:/usr/sbin:/usr/bin HOME=/root
IMDS=169.254.169.254
TOKEN=

say() { echo "nimbo-init: $*"; }

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev 2>/dev/null
mkdir -p /dev/pts /tmp /run /root /var/lib/nimbo
say "userspace up at $(cut -d' ' -f1 /proc/uptime)s"

# busybox halt/poweroff/reboot without -f signal PID 1: USR1/USR2/TERM.
trap 'say "power off"; sync; poweroff -f' USR1 USR2
trap 'say "reboot"; sync; reboot -f' TERM INT

DEBUG=
grep -q nimbo.debug /proc/cmdline && DEBUG=1
for m in $(cat /etc/nimbo/modules); do
    insmod "/lib/modules/$m.ko" 2>/dev/null || say "insmod $m failed"
    [ -n "$DEBUG" ] && say "insmod $m done at $(cut -d' ' -f1 /proc/uptime)s"
done

# ACPI power button (QMP system_powerdown): the first input event powers the guest off.
for ev in /sys/class/input/event*; do
    [ "$(cat "$ev/device/name" 2>/dev/null)" = "Power Button" ] || continue
    dev=/dev/input/${ev##*/}
    ( dd if="$dev" of=/dev/null bs=24 count=1 2>/dev/null && kill -USR2 1 ) &
done

for d in /sys/block/vd*; do
    [ -e "$d" ] && say "disk ${d##*/} serial $(cat "$d/serial" 2>/dev/null)"
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
    hostname "$ID"
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

say "ready at $(cut -d' ' -f1 /proc/uptime)s"
while :; do
    sleep 3600 &
    wait $!
done
