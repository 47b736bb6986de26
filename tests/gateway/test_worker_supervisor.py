"""gateway.workers without processes: the port's sockets (a port in use is one clear error, also
when another server's workers hold it) and the bound on restarts of a worker that keeps dying."""
from __future__ import annotations

import errno
import socket

import pytest

from gateway.config import Config
from gateway.workers import MAX_RESTARTS, Supervisor, listen_reuseport


def test_sockets_share_one_port_and_refuse_a_port_in_use():
    group = listen_reuseport("127.0.0.1", 0, 3)
    try:
        port = group[0].getsockname()[1]
        assert port and all(s.getsockname()[1] == port for s in group)
        assert all(s.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT) for s in group)
        with pytest.raises(OSError) as info:        # another server's workers: refused
            listen_reuseport("127.0.0.1", port, 2)
        assert info.value.errno == errno.EADDRINUSE
    finally:
        for sock in group:
            sock.close()
    with socket.create_server(("127.0.0.1", 0)) as plain:   # any listener: refused
        with pytest.raises(OSError) as info:
            listen_reuseport("127.0.0.1", plain.getsockname()[1], 2)
        assert info.value.errno == errno.EADDRINUSE


def test_a_worker_that_keeps_dying_stays_down_and_gives_up_its_socket():
    sockets = listen_reuseport("127.0.0.1", 0, 2)
    supervisor = Supervisor(Config(), sockets, lambda *args: 0)
    worker = supervisor.workers[0]
    killed = 9          # a wait status: killed by SIGKILL
    pauses = []
    for _ in range(MAX_RESTARTS):
        worker.pid = 12345
        supervisor._exited(worker, killed)     # noqa: SLF001
        assert not worker.given_up and worker.pid == 0
        pauses.append(worker.start_at)
    assert pauses == sorted(pauses)            # the pause grows
    worker.pid = 12345
    supervisor._exited(worker, killed)         # noqa: SLF001 (one more within the window)
    assert worker.given_up and worker.sock is None
    assert sockets[0].fileno() == -1           # closed: the kernel sends new connections elsewhere
    assert not supervisor.workers[1].given_up
    sockets[1].close()
