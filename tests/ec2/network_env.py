"""The EC2 handler-test environment with a data path: ``FakeDataPath`` as ``app.network``, so the
networking actions run as they do on a root Nimbo (public addresses, taps, the metadata relay)."""
from __future__ import annotations

import tempfile

import pytest

from backend.network.fake import FakeDataPath
from ec2_api import operations
from storage import accounts as account_rows
from tests.ec2.conftest import ADMIN, ALICE, BOB, Env


class NetEnv(Env):
    """``Env`` whose app carries a data path (None: user-mode, as a Nimbo that is not root)."""

    def __init__(self, tmp_path, data_path=True) -> None:
        super().__init__(tmp_path)
        self.config.public_ip_pool = "198.18.0.0/29"
        self.config.data_dir = tempfile.mkdtemp(prefix="nimbo-net-", dir="/tmp")   # short: unix socket paths
        self.data_path = FakeDataPath() if data_path else None

    async def open(self) -> "NetEnv":
        import os
        from backend.fake import FakeDriver
        from storage.db import Database
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.db = await Database.open(os.path.join(self.config.data_dir, "nimbo.db"))
        await account_rows.migrate(self.db)
        self.driver = FakeDriver(self.store, clock=self.clock)
        from types import SimpleNamespace
        self.app = SimpleNamespace(config=self.config, db=self.db, backend=self.driver, clock=self.clock,
                                   network=self.data_path)
        self.state = await operations.open_state(self.app, housekeeping=False)
        return self

    @property
    def sync(self):
        return self.state.network

    async def applied(self):
        """Settle background work, apply, and return the data path's state."""
        await self.settle()
        await self.sync.settle()
        return self.data_path.state if self.data_path is not None else await self.sync.settle()


async def _make(tmp_path, data_path):
    import shutil
    environment = await NetEnv(tmp_path, data_path).open()
    store = account_rows.AccountStore(environment.db)
    await store.create_account(ADMIN, "admin", "c" * 64, is_admin=True)
    await store.create_account(ALICE, "alice", "a" * 64)
    await store.create_account(BOB, "bob", "b" * 64)
    return environment, lambda: shutil.rmtree(environment.config.data_dir, ignore_errors=True)


@pytest.fixture
async def net(tmp_path):
    environment, cleanup = await _make(tmp_path, True)
    yield environment
    await environment.close()
    cleanup()


@pytest.fixture
async def usermode(tmp_path):
    environment, cleanup = await _make(tmp_path, False)
    yield environment
    await environment.close()
    cleanup()


@pytest.fixture
async def image(net):
    from ec2_api.images import register_tiny_image
    art = net.tmp_path / "artifacts"
    art.mkdir()
    (art / "disk.img").write_bytes(b"\0" * (1024 * 1024))
    return await register_tiny_image(net.db, net.config, {"disk": str(art / "disk.img")}, now=net.clock())


__all__ = ["net", "usermode", "image", "NetEnv", "ALICE", "BOB"]
