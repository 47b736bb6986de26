"""Joins a libvirt guest's NIC to its tap in Nimbo's VPC namespace, through loopback UDP.

Why: libvirt opens tap devices in libvirtd's own network namespace (the host's), but Nimbo's
data path keeps every tap in a VPC namespace of its own and never touches the host's
interfaces. So the guest's NIC is a libvirt ``<interface type='udp'>``: QEMU sends each
Ethernet frame as one datagram to ``127.0.0.1:relay_port`` and receives on
``127.0.0.1:qemu_port``. This relay holds a UDP socket on the host's loopback and the tap's
file descriptor, opened inside the VPC namespace (``setns`` in a short-lived thread), and copies
frames both ways. Security groups, anti-spoofing, DHCP, the metadata relay and the byte
counters of the data path all stay on the tap, as with the QEMU driver.

The UDP socket is ``connect``-ed to QEMU's port, so the kernel drops datagrams from any other
source; while the VM runs QEMU holds that port. Limits: frames cross user space in this
process, one thread per interface (fine at TCG speeds, not a fast path), and while Nimbo is down the guests of this host
have no network (the relay is started again when the driver re-adopts them).

Crash story: nothing persistent here; the ports live in the VM's ``nics.json``.
"""
from __future__ import annotations

import ctypes
import fcntl
import logging
import os
import select
import socket
import struct
import threading
import time
from typing import Optional

log = logging.getLogger(__name__)

TUNSETIFF = 0x400454CA
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
CLONE_NEWNET = 0x40000000
MAX_FRAME = 65535


def free_udp_port() -> int:
    """A loopback UDP port that is free now (bound and released: the caller binds it next)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def open_tap(name: str, netns: Optional[str]) -> int:
    """Attach to the existing tap ``name`` inside ``netns`` (None: this namespace); returns a
    non-blocking fd. The namespace switch happens in a thread of its own, so no other thread
    ever runs inside the VPC namespace."""
    result: dict = {}

    def work() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        own = target = -1
        try:
            if netns:
                own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
                target = os.open(os.path.join("/run/netns", netns), os.O_RDONLY)
                if libc.setns(target, CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns {netns}: {os.strerror(err)}")
            fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK | os.O_CLOEXEC)
            try:
                fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
            except OSError:
                os.close(fd)
                raise
            result["fd"] = fd
        except OSError as exc:
            result["error"] = exc
        finally:
            for fd in (target, own):
                if fd >= 0:
                    os.close(fd)
            # the thread ends here: its namespace dies with it (never returned to the pool)

    thread = threading.Thread(target=work, name=f"tap-open-{name}", daemon=True)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["fd"]


class TapRelay:
    """Copies frames between one tap and QEMU's UDP socket on the loopback, in a thread of its own
    (independent of the event loop: a busy loop never stalls a guest's network)."""

    def __init__(self, tap: str, netns: Optional[str], relay_port: int, qemu_port: int) -> None:
        self.tap, self.netns = tap, netns
        self.relay_port, self.qemu_port = relay_port, qemu_port
        self.tap_fd = -1
        self.sock: Optional[socket.socket] = None
        self.frames_to_guest = self.frames_from_guest = 0
        self._wake_r = self._wake_w = -1
        self._thread: Optional[threading.Thread] = None

    def start(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(("127.0.0.1", self.relay_port))
            sock.connect(("127.0.0.1", self.qemu_port))   # only QEMU's socket may send to us
            sock.setblocking(False)
            self.tap_fd = open_tap(self.tap, self.netns)
        except OSError:
            sock.close()
            raise
        self.sock = sock
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name=f"tap-relay-{self.tap}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        poller = select.poll()
        sock_fd = self.sock.fileno()
        for fd in (sock_fd, self.tap_fd, self._wake_r):
            poller.register(fd, select.POLLIN)
        while True:
            for fd, _events in poller.poll():
                if fd == self._wake_r:
                    return
                if fd == sock_fd:
                    self._from_guest()
                else:
                    self._to_guest()

    def _from_guest(self) -> None:
        for _ in range(64):   # bounded per wake-up
            try:
                frame = self.sock.recv(MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:   # ECONNREFUSED while QEMU did not listen yet: the error is consumed
                continue
            try:
                os.write(self.tap_fd, frame)
                self.frames_from_guest += 1
            except OSError:   # tap down or full: the frame is dropped, as on a wire
                pass

    def _to_guest(self) -> None:
        for _ in range(64):
            try:
                frame = os.read(self.tap_fd, MAX_FRAME)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                time.sleep(0.1)   # the tap went away (data path re-applied): do not spin
                return
            try:
                self.sock.send(frame)
                self.frames_to_guest += 1
            except OSError:
                pass

    def close(self) -> None:
        if self._thread is not None:
            os.write(self._wake_w, b"x")
            self._thread.join(timeout=5)
            self._thread = None
        for fd in (self._wake_r, self._wake_w, self.tap_fd):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = self.tap_fd = -1
        if self.sock is not None:
            self.sock.close()
            self.sock = None
