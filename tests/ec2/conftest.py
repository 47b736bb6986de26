"""Fixtures for the EC2 handler tests: a temp database, the backend's FakeDriver, the EC2
lifecycle, and handler contexts for a few accounts.

A simulated Nimbo restart (``Env.restart``) opens a new FakeDriver on the same VM store, as a new
Nimbo process re-adopts the VMs that outlived the old one."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from ec2_api import operations
from storage import accounts as account_rows
from storage.db import Database
from tests.ec2.helpers import Clock, make_ctx
from backend.fake import FakeDriver

ADMIN = "100000000001"
ALICE = "222222222222"
BOB = "333333333333"


class Env:
    """One Nimbo 'server' for a test: open/close the EC2 state like a restart would."""

    def __init__(self, tmp_path) -> None:
        self.tmp_path = tmp_path
        self.clock = Clock()
        self.store: dict = {}
        self.driver = None
        self.config = SimpleNamespace(
            data_dir=str(tmp_path / "data"), endpoint_url="http://127.0.0.1:8773", instance_types=None,
            regions={"us-east-1": ["us-east-1a", "us-east-1b", "us-east-1c"], "eu-west-1": ["eu-west-1a"]},
            host_vcpus=64, host_memory_mib=128 * 1024)
        os.makedirs(self.config.data_dir, exist_ok=True)
        self.db = None
        self.state = None
        self.app = None

    async def open(self) -> "Env":
        self.db = await Database.open(os.path.join(self.config.data_dir, "nimbo.db"))
        await account_rows.migrate(self.db)
        self.driver = FakeDriver(self.store, clock=self.clock)
        self.app = SimpleNamespace(config=self.config, db=self.db, backend=self.driver, clock=self.clock)
        self.state = await operations.open_state(self.app, housekeeping=False)
        return self

    async def close(self) -> None:
        if self.state is not None:
            await operations.close_state(self.state)
            self.state = None
        if self.db is not None:
            await self.db.close()
            self.db = None

    async def restart(self, between=None) -> None:
        """Nimbo goes down (VMs keep running), ``await between()`` happens, Nimbo comes back."""
        await self.close()
        if between is not None:
            await between()
        await self.open()

    async def spec(self, instance_id: str):
        return await self.driver.spec(instance_id)

    async def vm_exists(self, instance_id: str) -> bool:
        from backend.driver import VMState
        return (await self.driver.state(instance_id)).state != VMState.MISSING

    def ctx(self, account: str = ALICE, region: str = "us-east-1") -> SimpleNamespace:
        return make_ctx(self.app, self.state, account, region)

    async def settle(self) -> None:
        await self.state.wait_idle()


@pytest.fixture
async def env(tmp_path):
    environment = await Env(tmp_path).open()
    store = account_rows.AccountStore(environment.db)
    await store.create_account(ADMIN, "admin", "c" * 64, is_admin=True)
    await store.create_account(ALICE, "alice", "a" * 64)
    await store.create_account(BOB, "bob", "b" * 64)
    yield environment
    await environment.close()


@pytest.fixture
async def tiny_image(env, tmp_path):
    """The tiny image registered from small stand-in artifacts (a 4 MiB raw disk)."""
    from ec2_api.images import register_tiny_image
    art = tmp_path / "artifacts"
    art.mkdir()
    (art / "disk.img").write_bytes(b"\0" * (4 * 1024 * 1024))
    (art / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 100)
    (art / "initrd.img").write_bytes(b"\x1f\x8b" + b"\0" * 100)
    return await register_tiny_image(env.db, env.config, {
        "disk": str(art / "disk.img"), "kernel": str(art / "vmlinux"), "initrd": str(art / "initrd.img"),
        "cmdline": "console=ttyS0 quiet"}, now=env.clock())
