"""On-disk and /proc facts about QEMU VMs: marker files, liveness, exit classification."""
from __future__ import annotations

import json
import os
import signal
from datetime import datetime, timezone
from typing import Any, Optional

from .driver import VMState
from .qemu_cmdline import VMPaths

_KILL_SIGNALS = {signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP}


def ts(epoch: Optional[float]) -> Optional[datetime]:
    return None if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)


def read_text(path: str) -> Optional[str]:
    try:
        with open(path) as f:
            return f.read()
    except (FileNotFoundError, NotADirectoryError):
        return None


def write_text(path: str, text: str) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def unlink(*paths: str) -> None:
    for p in paths:
        try:
            os.unlink(p)
        except FileNotFoundError:
            pass


def pid_alive(pid: Optional[int], marker: str) -> bool:
    """The pid runs (not a zombie) and its command line mentions ``marker`` (our VM folder),
    so a recycled pid after a host reboot is not mistaken for our QEMU."""
    if not pid:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmdline = f.read()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    if stat.rsplit(")", 1)[1].split()[0] in ("Z", "X"):
        return False
    return marker.encode() in cmdline


def exit_classification(paths: VMPaths) -> tuple[VMState, Optional[float], Optional[str], Optional[int]]:
    """(state, exit epoch, reason, status) for a VM whose QEMU is gone."""
    raw = read_text(paths.exit)
    status: Optional[int] = None
    at: Optional[float] = None
    if raw:
        try:
            code, stamp = raw.split()[:2]
            status, at = int(code), float(stamp)
        except ValueError:
            pass
    if at is None:  # the wrapper did not survive either: best guess is the last console write
        for p in (paths.console, paths.pidfile, paths.started):
            try:
                at = os.stat(p).st_mtime
                break
            except FileNotFoundError:
                continue
    stop = read_text(paths.stop_requested)
    if stop is not None:
        return VMState.STOPPED, at, f"stopped by host ({stop.strip() or 'requested'})", status
    if os.path.exists(paths.panicked):
        return VMState.CRASHED, at, "guest kernel panicked", status
    event = json.loads(read_text(paths.shutdown_event) or "{}")
    if status is None:
        return VMState.SHUTDOWN, at, "hypervisor process exited while unobserved", None
    if status == 0:
        reason = {"guest-shutdown": "guest powered off", "host-signal": "hypervisor terminated",
                  "host-qmp-quit": "hypervisor quit"}.get(event.get("reason"), "hypervisor exited")
        return VMState.SHUTDOWN, at, reason, 0
    if status > 128 and status - 128 in {int(s) for s in _KILL_SIGNALS}:
        return VMState.SHUTDOWN, at, f"hypervisor killed by signal {status - 128}", status
    tail = (read_text(paths.qemu_log) or "").strip().splitlines()[-1:] or [""]
    return VMState.CRASHED, at, f"hypervisor exited with status {status}: {tail[0]}".rstrip(": "), status


def proc_usage(pid: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        tick = os.sysconf("SC_CLK_TCK")
        out["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    out["rss_bytes"] = int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
        pass
    return out
