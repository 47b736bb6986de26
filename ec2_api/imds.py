"""The instance metadata service: one aiohttp unix socket per instance that the hypervisor connects
the guest's 169.254.169.254:80 to. The socket names the instance, so a guest sees only its own data.

IMDSv1 and v2: ``PUT /latest/api/token`` with ``X-aws-ec2-metadata-token-ttl-seconds`` (1-21600)
gives a token bound to the instance; GETs carry it in ``X-aws-ec2-metadata-token``. With
HttpTokens=required a GET without a valid token is 401; with HttpEndpoint=disabled every request
is 404. The tree is rendered as IMDS does: listings one entry per line, subtrees with a trailing
'/'. Every version path (``/latest``, ``/2021-03-23`` ...) serves the same tree. The HTTP layer is
``ec2_api.imds_http`` (it copes with the half-closed connections that QEMU's guestfwd makes).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import os
import secrets
import time
from typing import Any, Callable

from ec2_api import instance_store
from ec2_api.common import from_us
from ec2_api.imds_http import Reply, Request, serve_unix

VERSIONS = ["1.0", "2007-01-19", "2007-03-01", "2007-08-29", "2007-10-10", "2007-12-15", "2008-02-01",
            "2008-09-01", "2009-04-04", "2011-01-01", "2011-05-01", "2012-01-12", "2014-02-25",
            "2014-11-05", "2015-10-20", "2016-04-19", "2016-06-30", "2016-09-02", "2018-03-28",
            "2018-08-17", "2018-09-24", "2019-10-01", "2020-10-27", "2021-01-03", "2021-03-23",
            "2021-07-15", "2022-09-24", "latest"]
TOKEN_HEADER = "X-aws-ec2-metadata-token"
TTL_HEADER = "X-aws-ec2-metadata-token-ttl-seconds"
MAX_TTL = 21600
NOT_FOUND_BODY = ('<?xml version="1.0" encoding="iso-8859-1"?>\n<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML '
                  '1.0 Transitional//EN"\n\t"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">\n'
                  '<html xmlns="http://www.w3.org/1999/xhtml" xml:lang="en" lang="en">\n <head>\n'
                  '  <title>404 - Not Found</title>\n </head>\n <body>\n  <h1>404 - Not Found</h1>\n'
                  ' </body>\n</html>\n')


def socket_path(config: Any, instance_id: str) -> str:
    """``<data_dir>/imds/<instance-id>.sock``; a data dir too deep for a unix socket name (108
    bytes) uses a short folder under /tmp named after the data dir instead."""
    path = os.path.join(config.data_dir, "imds", f"{instance_id}.sock")
    if len(path.encode()) < 100:
        return path
    digest = hashlib.sha256(os.path.abspath(config.data_dir).encode()).hexdigest()[:12]
    return os.path.join("/tmp", f"nimbo-imds-{digest}", f"{instance_id}.sock")


def hostname_of(private_ip: str | None, region: str) -> str:
    if not private_ip:
        return ""
    domain = "ec2.internal" if region == "us-east-1" else f"{region}.compute.internal"
    return f"ip-{private_ip.replace('.', '-')}.{domain}"


class Tokens:
    """IMDSv2 session tokens: HMAC-signed (instance id, expiry); valid until Nimbo restarts."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._secret = secrets.token_bytes(32)
        self._clock = clock

    def issue(self, instance_id: str, ttl: int) -> str:
        expires = int(self._clock()) + ttl
        body = base64.urlsafe_b64encode(f"{instance_id}:{expires}".encode()).decode().rstrip("=")
        return f"AQAE{body}.{self._sign(body)}"

    def remaining(self, token: str, instance_id: str) -> int | None:
        """Seconds the token stays valid for this instance, or None when it is not valid."""
        if not token.startswith("AQAE") or "." not in token:
            return None
        body, _, mac = token[4:].partition(".")
        if not hmac.compare_digest(mac, self._sign(body)):
            return None
        try:
            owner, _, expires = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode().rpartition(":")
            left = int(expires) - int(self._clock())
        except (ValueError, UnicodeDecodeError):
            return None
        if owner != instance_id or left <= 0:
            return None
        return left

    def _sign(self, body: str) -> str:
        return hmac.new(self._secret, body.encode(), hashlib.sha256).hexdigest()[:32]


class ImdsServer:
    """The metadata sockets of the instances on this host."""

    def __init__(self, db: Any, config: Any) -> None:
        self.db = db
        self.config = config
        self.tokens = Tokens()
        self._servers: dict[str, tuple[asyncio.AbstractServer, str]] = {}

    def path(self, instance_id: str) -> str:
        return socket_path(self.config, instance_id)

    def is_open(self, instance_id: str) -> bool:
        return instance_id in self._servers

    async def open(self, instance_id: str) -> str:
        """Listen on the instance's socket (idempotent); returns its path."""
        if instance_id in self._servers:
            return self._servers[instance_id][1]
        path = self.path(instance_id)
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        if os.path.exists(path):
            os.unlink(path)

        async def handle(request: Request) -> Reply:
            return await _handle(self, instance_id, request)
        server = await serve_unix(path, handle)
        os.chmod(path, 0o600)
        self._servers[instance_id] = (server, path)
        return path

    async def close(self, instance_id: str) -> None:
        entry = self._servers.pop(instance_id, None)
        if entry is None:
            return
        server, path = entry
        server.close()
        await server.wait_closed()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass

    async def close_all(self) -> None:
        for instance_id in list(self._servers):
            await self.close(instance_id)


def _text(body: str, status: int = 200, headers: dict | None = None,
          content_type: str = "text/plain") -> Reply:
    return Reply(status, body.encode(), {"Content-Type": content_type, "Server": "EC2ws", **(headers or {})})


def _not_found() -> Reply:
    return _text(NOT_FOUND_BODY, 404, content_type="text/html")


async def _handle(server: ImdsServer, instance_id: str, request: Request) -> Reply:
    row = await instance_store.load(server.db, instance_id)
    if row is None:
        return _not_found()
    options = instance_store.data_of(row).get("metadata_options") or {}
    if options.get("HttpEndpoint", "enabled") != "enabled":
        return _not_found()
    parts = [p for p in request.path.split("/") if p]
    if request.method == "PUT":
        if len(parts) == 3 and parts[0] in VERSIONS and parts[1:] == ["api", "token"]:
            return _issue_token(request, server, instance_id)
        return _text("", 405) if parts[1:] != ["api", "token"] else _not_found()
    if request.method not in ("GET", "HEAD"):
        return _text("", 405, {"Allow": "OPTIONS, GET, HEAD, PUT"})
    headers: dict[str, str] = {}
    token = request.headers.get(TOKEN_HEADER)
    if token is not None:
        left = server.tokens.remaining(token, instance_id)
        if left is None:
            return _text("", 401)
        headers[TTL_HEADER] = str(left)
    elif options.get("HttpTokens", "optional") == "required":
        return _text("", 401)
    if not parts:
        return _text("\n".join(VERSIONS), headers=headers)
    if parts[0] not in VERSIONS:
        return _not_found()
    return await _serve(server, row, parts[1:], headers)


def _issue_token(request: Request, server: ImdsServer, instance_id: str) -> Reply:
    if "X-Forwarded-For" in request.headers:
        return _text("", 403)
    raw = request.headers.get(TTL_HEADER)
    try:
        ttl = int(raw) if raw is not None else 0
    except ValueError:
        ttl = 0
    if not 1 <= ttl <= MAX_TTL:
        return _text("", 400)
    return _text(server.tokens.issue(instance_id, ttl), headers={TTL_HEADER: str(ttl)})


async def _serve(server: ImdsServer, row: Any, parts: list[str], headers: dict[str, str]) -> Reply:
    data = instance_store.data_of(row)
    user_data = row["user_data"]
    if not parts:
        entries = ["dynamic", "meta-data"] + (["user-data"] if user_data else [])
        return _text("\n".join(entries), headers=headers)
    if parts == ["user-data"]:
        if not user_data:
            return _not_found()
        return Reply(200, base64.b64decode(user_data), {
            "Content-Type": "application/octet-stream", "Server": "EC2ws", **headers})
    if parts[0] == "dynamic":
        tree: Any = {"instance-identity": {"document": identity_document(row, data)}}
    elif parts[0] == "meta-data":
        tree = await metadata_tree(server, row, data)
    else:
        return _not_found()
    node = tree
    for part in parts[1:]:
        if not isinstance(node, dict) or part not in node:
            return _not_found()
        node = node[part]
    if isinstance(node, dict):
        return _text(_listing(node), headers=headers)
    return _text(node, headers=headers)


class Folder(dict):
    """A meta-data folder whose listing names some entries differently (``0=my-key``)."""

    def __init__(self, entries: dict, labels: dict[str, str] | None = None) -> None:
        super().__init__(entries)
        self.labels = labels or {}


def _listing(node: dict) -> str:
    labels = getattr(node, "labels", {})
    return "\n".join(labels.get(key) or (f"{key}/" if isinstance(value, dict) else key)
                     for key, value in node.items())


def identity_document(row: Any, data: dict) -> str:
    document = {
        "accountId": row["account_id"],
        "architecture": data.get("architecture", "x86_64"),
        "availabilityZone": row["availability_zone"],
        "billingProducts": None,
        "devpayProductCodes": None,
        "marketplaceProductCodes": None,
        "imageId": row["image_id"],
        "instanceId": row["instance_id"],
        "instanceType": row["instance_type"],
        "kernelId": data.get("kernel_id"),
        "pendingTime": from_us(row["pending_time_us"]).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "privateIp": row["private_ip"],
        "ramdiskId": data.get("ramdisk_id"),
        "region": row["region"],
        "version": "2017-09-30",
    }
    return json.dumps(document, indent=2, separators=(",", " : "))


async def metadata_tree(server: ImdsServer, row: Any, data: dict) -> dict:
    """The meta-data tree of one instance (strings are leaves, dicts are folders)."""
    ip = row["private_ip"] or ""
    hostname = hostname_of(ip, row["region"])
    mac = row["mac"]
    groups = data.get("security_groups") or []
    root_device = data.get("root_device_name", "/dev/xvda")
    interface = {
        "device-number": "0",
        "interface-id": data.get("eni_id", ""),
        "local-hostname": hostname,
        "local-ipv4s": ip,
        "mac": mac,
        "owner-id": row["account_id"],
        "security-group-ids": "\n".join(g["GroupId"] for g in groups),
        "security-groups": "\n".join(g["GroupName"] for g in groups),
        "subnet-id": row["subnet_id"],
        "subnet-ipv4-cidr-block": data.get("subnet_cidr", ""),
        "vpc-id": row["vpc_id"],
        "vpc-ipv4-cidr-block": data.get("vpc_cidr", ""),
        "vpc-ipv4-cidr-blocks": data.get("vpc_cidr", ""),
    }
    tree: dict[str, Any] = {
        "ami-id": row["image_id"],
        "ami-launch-index": str(row["launch_index"]),
        "ami-manifest-path": "(unknown)",
        "block-device-mapping": dict(sorted({"ami": root_device, "root": root_device, **{   # + EBS volumes
            f"ebs{n}": d["device_name"].removeprefix("/dev/")
            for n, d in enumerate(data.get("block_devices") or [], start=1)}}.items())),
        "hostname": hostname,
        "instance-action": "none",
        "instance-id": row["instance_id"],
        "instance-life-cycle": "on-demand",
        "instance-type": row["instance_type"],
        "local-hostname": hostname,
        "local-ipv4": ip,
        "mac": mac,
        "network": {"interfaces": {"macs": {mac: interface}}},
        "placement": {"availability-zone": row["availability_zone"],
                      "availability-zone-id": data.get("availability_zone_id", ""),
                      "region": row["region"]},
        "profile": "default-hvm",
        "reservation-id": row["reservation_id"],
        "security-groups": "\n".join(g["GroupName"] for g in groups),
        "services": {"domain": "amazonaws.com", "partition": "aws"},
    }
    if data.get("public_key"):
        tree["public-keys"] = Folder({"0": {"openssh-key": data["public_key"]}},
                                     {"0": f"0={row['key_name']}"})
    options = data.get("metadata_options") or {}
    if options.get("InstanceMetadataTags") == "enabled":
        rows = await server.db.fetchall(
            "SELECT key, value FROM ec2_tags WHERE account_id = ? AND resource_id = ? ORDER BY key",
            (row["account_id"], row["instance_id"]))
        tree["tags"] = {"instance": {r["key"]: r["value"] for r in rows}}
    from ec2_api.imds_network import network_metadata  # noqa: PLC0415 (interfaces, public addresses)
    await network_metadata(server.db, row, tree)
    return dict(sorted(tree.items()))
