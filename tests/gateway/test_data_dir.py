"""The server's lock on its data directory and the ``endpoint`` file that says it serves."""
from __future__ import annotations

import os

import pytest

from gateway import data_dir


def test_a_killed_servers_endpoint_file_is_gone_once_the_next_server_holds_the_lock(tmp_path):
    folder = str(tmp_path / "data")
    os.makedirs(folder)
    with open(os.path.join(folder, "endpoint"), "w") as fh:   # what a kill -9 leaves behind
        fh.write("http://127.0.0.1:1\n")
    lock = data_dir.lock_for_server(folder)
    try:
        assert not os.path.exists(os.path.join(folder, "endpoint"))
        with pytest.raises(data_dir.DataDirInUse):   # and a second server still refuses
            data_dir.lock_for_server(folder)
    finally:
        lock.release()
