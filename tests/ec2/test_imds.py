"""The metadata service over the instance's real unix socket, with an aiohttp client."""
from __future__ import annotations

import asyncio
import base64
import json
import os

import aiohttp
import pytest

from ec2_api.imds import Tokens
from ec2_api.instance_actions import modify_instance_metadata_options, terminate_instances
from ec2_api.instances import run_instances
from ec2_api.key_pairs import import_key_pair
from ec2_api.tags import create_tags
from tests.ec2.conftest import ALICE

PUBLIC_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJIy2bg74YnzNGCcBzhOIEF90kVJLwyL2uJzM2t8gLqC test")


class Guest:
    """What a guest sees at 169.254.169.254: requests to the instance's socket."""

    def __init__(self, path: str) -> None:
        self.session = aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=path))

    async def request(self, method: str, path: str, headers: dict | None = None) -> tuple[int, bytes, dict]:
        async with self.session.request(method, f"http://169.254.169.254{path}", headers=headers or {}) as resp:
            return resp.status, await resp.read(), dict(resp.headers)

    async def get(self, path: str, token: str | None = None) -> tuple[int, str]:
        headers = {"X-aws-ec2-metadata-token": token} if token else {}
        status, body, _ = await self.request("GET", path, headers)
        return status, body.decode(errors="replace")

    async def token(self, ttl: int = 60) -> str:
        status, body, headers = await self.request("PUT", "/latest/api/token",
                                                   {"X-aws-ec2-metadata-token-ttl-seconds": str(ttl)})
        assert status == 200 and headers["X-aws-ec2-metadata-token-ttl-seconds"] == str(ttl)
        return body.decode()

    async def close(self) -> None:
        await self.session.close()


@pytest.fixture
async def guest_of(env):
    guests = []

    def open_guest(instance_id: str) -> Guest:
        guest = Guest(env.state.imds.path(instance_id))
        guests.append(guest)
        return guest
    yield open_guest
    for guest in guests:
        await guest.close()


async def launch(env, image, **params):
    out = await run_instances(env.ctx(), {"ImageId": image, "MinCount": 1, "MaxCount": 1,
                                          "InstanceType": "t3.small", **params})
    await env.settle()
    return dict(out["Instances"][0], ReservationId=out["ReservationId"])


async def test_metadata_tree_v1_and_v2(env, tiny_image, guest_of):
    await import_key_pair(env.ctx(), {"KeyName": "laptop", "PublicKeyMaterial": PUBLIC_KEY.encode()})
    instance = await launch(env, tiny_image, KeyName="laptop")
    instance_id = instance["InstanceId"]
    guest = guest_of(instance_id)
    status, versions = await guest.get("/")
    assert status == 200 and "latest" in versions.split("\n") and "2009-04-04" in versions.split("\n")
    status, listing = await guest.get("/latest/meta-data/")
    entries = listing.split("\n")
    assert {"ami-id", "instance-id", "instance-type", "hostname", "local-ipv4", "mac", "placement/",
            "network/", "public-keys/", "block-device-mapping/", "services/", "reservation-id"} <= set(entries)
    assert "tags/" not in entries
    token = await guest.token(120)
    for version in ("latest", "2021-03-23", "2018-09-24", "2016-09-02", "2009-04-04"):
        assert await guest.get(f"/{version}/meta-data/instance-id", token) == (200, instance_id)
    assert await guest.get("/latest/meta-data/ami-id") == (200, tiny_image)
    assert await guest.get("/latest/meta-data/instance-type") == (200, "t3.small")
    assert await guest.get("/latest/meta-data/local-ipv4") == (200, instance["PrivateIpAddress"])
    assert await guest.get("/latest/meta-data/hostname") == (200, instance["PrivateDnsName"])
    assert await guest.get("/latest/meta-data/placement/availability-zone") == (200, "us-east-1a")
    assert await guest.get("/latest/meta-data/placement/region") == (200, "us-east-1")
    assert await guest.get("/latest/meta-data/reservation-id") == (200, instance["ReservationId"])
    mac = instance["NetworkInterfaces"][0]["MacAddress"]
    assert await guest.get("/latest/meta-data/mac") == (200, mac)
    assert await guest.get("/latest/meta-data/network/interfaces/macs/") == (200, f"{mac}/")
    base = f"/latest/meta-data/network/interfaces/macs/{mac}"
    assert await guest.get(f"{base}/device-number") == (200, "0")
    assert await guest.get(f"{base}/local-ipv4s") == (200, instance["PrivateIpAddress"])
    assert await guest.get(f"{base}/subnet-id") == (200, instance["SubnetId"])
    assert await guest.get(f"{base}/vpc-id") == (200, instance["VpcId"])
    assert await guest.get(f"{base}/vpc-ipv4-cidr-block") == (200, "172.31.0.0/16")
    assert await guest.get("/latest/meta-data/public-keys/") == (200, "0=laptop")
    assert await guest.get("/latest/meta-data/public-keys/0/") == (200, "openssh-key")
    status, key = await guest.get("/latest/meta-data/public-keys/0/openssh-key")
    assert status == 200 and key.split()[:2] == PUBLIC_KEY.split()[:2]
    assert await guest.get("/latest/meta-data/block-device-mapping/") == (200, "ami\nroot")
    assert await guest.get("/latest/meta-data/block-device-mapping/root") == (200, "/dev/xvda")
    assert await guest.get("/latest/meta-data/security-groups") == (200, "default")
    assert await guest.get("/latest/meta-data/services/domain") == (200, "amazonaws.com")
    assert (await guest.get("/latest/meta-data/no-such-thing"))[0] == 404
    assert (await guest.get("/latest/user-data"))[0] == 404
    assert await guest.get("/latest/") == (200, "dynamic\nmeta-data")
    status, document = await guest.get("/latest/dynamic/instance-identity/document", token)
    identity = json.loads(document)
    assert identity["instanceId"] == instance_id and identity["accountId"] == ALICE
    assert identity["imageId"] == tiny_image and identity["instanceType"] == "t3.small"
    assert identity["region"] == "us-east-1" and identity["availabilityZone"] == "us-east-1a"
    assert identity["privateIp"] == instance["PrivateIpAddress"] and identity["architecture"] == "x86_64"
    assert identity["pendingTime"] == "2026-03-01T12:00:00Z" and identity["version"] == "2017-09-30"


async def test_tokens_and_required_mode(env, tiny_image, guest_of):
    instance = await launch(env, tiny_image, UserData=base64.b64encode(b"#cloud-config\n").decode(),
                            MetadataOptions={"HttpTokens": "required"})
    other = await launch(env, tiny_image)
    guest = guest_of(instance["InstanceId"])
    assert (await guest.get("/latest/meta-data/instance-id"))[0] == 401
    for ttl in ("0", "21601", "abc"):
        status, _, _ = await guest.request("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": ttl})
        assert status == 400
    status, _, _ = await guest.request("PUT", "/latest/api/token")
    assert status == 400
    status, _, _ = await guest.request("PUT", "/latest/api/token", {"X-aws-ec2-metadata-token-ttl-seconds": "60",
                                                                    "X-Forwarded-For": "1.2.3.4"})
    assert status == 403
    token = await guest.token(21600)
    status, body, headers = await guest.request("GET", "/latest/user-data", {"X-aws-ec2-metadata-token": token})
    assert status == 200 and body == b"#cloud-config\n"
    assert int(headers["X-aws-ec2-metadata-token-ttl-seconds"]) <= 21600
    assert (await guest.get("/latest/meta-data/instance-id", "AQAEbogus.token"))[0] == 401
    # a token is bound to its instance: the other guest cannot use it
    other_guest = guest_of(other["InstanceId"])
    assert (await other_guest.get("/latest/meta-data/instance-id", token))[0] == 401
    assert await other_guest.get("/latest/meta-data/instance-id") == (200, other["InstanceId"])
    # switching tokens off again lets IMDSv1 through
    await modify_instance_metadata_options(env.ctx(), {"InstanceId": instance["InstanceId"], "HttpTokens": "optional"})
    assert await guest.get("/latest/meta-data/instance-id") == (200, instance["InstanceId"])


async def test_half_closed_http10_clients(env, tiny_image):
    """The guest's connection arrives through guestfwd + socat, which half-closes the socket once
    the request is sent (busybox nc does): the answer must still come back."""
    instance = await launch(env, tiny_image, MetadataOptions={"HttpTokens": "required"})
    path = env.state.imds.path(instance["InstanceId"])

    async def exchange(request: bytes) -> bytes:
        reader, writer = await asyncio.open_unix_connection(path)
        writer.write(request)
        await writer.drain()
        writer.write_eof()
        answer = await reader.read()
        writer.close()
        return answer
    answer = await exchange(b"PUT /latest/api/token HTTP/1.0\r\nHost: 169.254.169.254\r\n"
                            b"X-aws-ec2-metadata-token-ttl-seconds: 21600\r\nContent-Length: 0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    token = answer.split(b"\r\n\r\n", 1)[1]
    answer = await exchange(b"GET /latest/meta-data/instance-id HTTP/1.0\r\nHost: 169.254.169.254\r\n"
                            b"X-aws-ec2-metadata-token: " + token + b"\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 200 OK\r\n")
    assert answer.endswith(b"\r\n\r\n" + instance["InstanceId"].encode())
    answer = await exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert (await exchange(b"garbage\r\n\r\n")).startswith(b"HTTP/1.1 400")


async def test_keep_alive(env, tiny_image, guest_of):
    instance = await launch(env, tiny_image)
    guest = guest_of(instance["InstanceId"])
    for _ in range(3):   # aiohttp's client reuses one connection
        assert await guest.get("/latest/meta-data/instance-id") == (200, instance["InstanceId"])
    status, body, headers = await guest.request("HEAD", "/latest/meta-data/instance-id")
    assert status == 200 and body == b"" and headers["Content-Length"] == str(len(instance["InstanceId"]))


def test_socket_path_fits_a_unix_socket_name():
    from types import SimpleNamespace
    from ec2_api.imds import socket_path
    short = socket_path(SimpleNamespace(data_dir="/var/lib/nimbo"), "i-0123456789abcdef0")
    assert short == "/var/lib/nimbo/imds/i-0123456789abcdef0.sock"
    deep = socket_path(SimpleNamespace(data_dir="/srv/" + "x" * 120), "i-0123456789abcdef0")
    assert deep.startswith("/tmp/nimbo-imds-") and len(deep.encode()) < 100


def test_tokens_expire():
    now = [1000.0]
    tokens = Tokens(clock=lambda: now[0])
    token = tokens.issue("i-0123456789abcdef0", 10)
    assert tokens.remaining(token, "i-0123456789abcdef0") == 10
    assert tokens.remaining(token, "i-0123456789abcdef1") is None
    now[0] += 11
    assert tokens.remaining(token, "i-0123456789abcdef0") is None


async def test_disabled_endpoint_tags_and_socket_removal(env, tiny_image, guest_of):
    instance = await launch(env, tiny_image, MetadataOptions={"InstanceMetadataTags": "enabled"})
    instance_id = instance["InstanceId"]
    await create_tags(env.ctx(), {"Resources": [instance_id], "Tags": [{"Key": "Name", "Value": "web-1"},
                                                                       {"Key": "role", "Value": "api"}]})
    guest = guest_of(instance_id)
    assert await guest.get("/latest/meta-data/tags/instance/") == (200, "Name\nrole")
    assert await guest.get("/latest/meta-data/tags/instance/Name") == (200, "web-1")
    await modify_instance_metadata_options(env.ctx(), {"InstanceId": instance_id, "HttpEndpoint": "disabled"})
    assert (await guest.get("/latest/meta-data/instance-id"))[0] == 404
    path = env.state.imds.path(instance_id)
    await terminate_instances(env.ctx(), {"InstanceIds": [instance_id]})
    await env.settle()
    assert not os.path.exists(path)


async def test_block_device_mapping_lists_ebs_volumes_of_the_launch(env, tiny_image, guest_of):
    """IMDS block-device-mapping/ebsN: the EBS volumes present at launch, by device name."""
    instance = await launch(env, tiny_image, BlockDeviceMappings=[
        {"DeviceName": "/dev/sdb", "Ebs": {"VolumeSize": 1}}])
    guest = guest_of(instance["InstanceId"])
    assert await guest.get("/latest/meta-data/block-device-mapping/") == (200, "ami\nebs1\nroot")
    assert await guest.get("/latest/meta-data/block-device-mapping/ebs1") == (200, "sdb")
