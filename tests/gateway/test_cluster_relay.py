"""The cluster's relay signature (``gateway.cluster_relay``): what makes the EC2 leader believe the
client address and scheme another gateway reports, and what does not; and the PostgreSQL session
lock that elects the leader (``storage.postgres.try_session_lock``)."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from gateway.cluster import advertised, listen_address
from gateway.cluster_relay import MAX_SKEW_SECONDS, relay_key, sign, verify
from gateway.config import Config

KEY = os.urandom(32)
HEADERS = {"Host": "ec2.example:8773", "Authorization": "AWS4-HMAC-SHA256 Credential=AKID/...",
           "X-Amz-Date": "20261204T190000Z", "Content-Type": "application/x-www-form-urlencoded"}


def signed(now: float | None = None, key: bytes = KEY, **changes) -> dict:
    headers = dict(HEADERS)
    headers.update(sign(key, "POST", "/?x=1", HEADERS, "198.51.100.1", "https", now=now))
    headers.update(changes)
    return headers


def test_a_relay_signed_with_the_cluster_key_verifies():
    assert verify(KEY, "POST", "/?x=1", signed(), "198.51.100.1", "https")


@pytest.mark.parametrize("what", ["key", "method", "path", "address", "scheme", "authorization",
                                  "host", "cookie", "old", "future", "garbled", "absent"])
def test_anything_else_is_not_believed(what):
    headers, method, path, address, proto, key = signed(), "POST", "/?x=1", "198.51.100.1", "https", KEY
    if what == "key":
        key = os.urandom(32)
    elif what == "method":
        method = "GET"
    elif what == "path":
        path = "/?x=2"
    elif what == "address":
        address = "203.0.113.9"
    elif what == "scheme":
        proto = "http"
    elif what == "authorization":
        headers["Authorization"] += "x"
    elif what == "host":
        headers["Host"] = "other:8773"
    elif what == "cookie":
        headers["Cookie"] = "nimbo_session=stolen"
    elif what == "old":
        headers = signed(now=time.time() - MAX_SKEW_SECONDS - 5)
    elif what == "future":
        headers = signed(now=time.time() + MAX_SKEW_SECONDS + 5)
    elif what == "garbled":
        headers["X-Nimbo-Relay-Signature"] = "0" * 64
    elif what == "absent":
        del headers["X-Nimbo-Relay-Signature"]
    assert not verify(key, method, path, headers, address, proto)


def test_no_key_no_trust():
    """On SQLite there is no cluster: nothing is a relay from another gateway."""
    assert not verify(None, "POST", "/?x=1", signed(), "198.51.100.1", "https")


def test_the_relay_key_comes_from_the_master_key_beside_the_objects(tmp_path):
    shared = tmp_path / "blobs"
    shared.mkdir()
    one = relay_key(Config(data_dir=str(tmp_path / "gw1"), blob_dir=str(shared)))
    two = relay_key(Config(data_dir=str(tmp_path / "gw2"), blob_dir=str(shared)))
    assert one == two and len(one) == 32
    with open(shared / "master.key", "rb") as fh:
        assert one != fh.read()      # derived, not the master key itself
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert relay_key(Config(data_dir=str(tmp_path / "gw3"), blob_dir=str(other))) != one


def test_internal_address():
    assert listen_address(Config(host="127.0.0.1")) == ("127.0.0.1", 0)
    assert listen_address(Config(host="0.0.0.0", cluster_address="10.0.0.5:8780")) == ("10.0.0.5", 8780)
    assert listen_address(Config(host="::1", cluster_address="[::1]:9000")) == ("::1", 9000)
    assert advertised("127.0.0.1", 4242) == "http://127.0.0.1:4242"
    assert advertised("::1", 4242) == "http://[::1]:4242"


def test_one_session_holds_the_leader_lock_until_it_goes(postgres):
    from storage.postgres import try_session_lock  # noqa: PLC0415
    url = postgres.fresh_database("lock_test")

    async def scenario() -> None:
        first = await try_session_lock(url, "nimbo-ec2-leader")
        assert first is not None and await first.alive()
        assert await try_session_lock(url, "nimbo-ec2-leader") is None
        other = await try_session_lock(url, "another-role")
        assert other is not None
        await other.release()
        await first.release()
        assert not await first.alive()
        second = await try_session_lock(url, "nimbo-ec2-leader")
        assert second is not None and await second.alive()
        # its session ended by the server (a restart, a broken connection): the holder can tell,
        # and another session takes the lock (gateway.leader then stops the old holder)
        import psycopg  # noqa: PLC0415
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as admin:
            await admin.execute("SELECT pg_terminate_backend(pid) FROM pg_locks"
                                " WHERE locktype = 'advisory' AND pid <> pg_backend_pid() AND objid::bigint = %s"
                                " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
                                (second.key,))
        assert not await second.alive()
        third = await try_session_lock(url, "nimbo-ec2-leader")
        assert third is not None
        await third.release()
        await second.release()
    asyncio.run(scenario())


def test_clusters_in_two_schemas_of_one_database_each_have_a_leader(postgres):
    """Advisory locks are per database: the leader's lock is named by the schema, so two clusters
    in one database (their own ``search_path``) do not take each other's leadership."""
    from gateway.cluster import ClusterSeat  # noqa: PLC0415
    from storage.postgres import PostgresDatabase  # noqa: PLC0415

    async def scenario() -> None:
        one = await PostgresDatabase.open(postgres.schema_url("cluster-one"))
        two = await PostgresDatabase.open(postgres.schema_url("cluster-two"))
        config = Config(data_dir="/nonexistent")
        seats = []
        try:
            for db in (one, two):
                seat = await ClusterSeat(config, db).try_take()
                assert seat is not None
                seats.append(seat)
            assert await ClusterSeat(config, one).try_take() is None   # one leader per cluster
        finally:
            for seat in seats:
                await seat.release()
            await one.close()
            await two.close()
    asyncio.run(scenario())
