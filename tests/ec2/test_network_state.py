"""What the data path is asked to do (``network_state.desired_state`` through ``NetworkSync``):
security groups resolved to CIDRs (group references become the members' addresses), routes from
each subnet's route table, DHCP options, hostnames, metadata options, taps only for instances
with a VM, an empty state once the last resource is gone; the metadata service over the relay's
socket; per-interface counters billed as AWS prices data transfer."""
from __future__ import annotations

import asyncio
from decimal import Decimal

from backend.network.model import InterfaceCounters, SecurityRule
from ec2_api.dhcp_options import associate_dhcp_options, create_dhcp_options
from ec2_api.imds_relay import socket_path
from ec2_api.instance_actions import modify_instance_metadata_options, stop_instances, terminate_instances
from ec2_api.instances import run_instances
from ec2_api.internet_gateways import attach_internet_gateway, create_internet_gateway, \
    detach_internet_gateway
from ec2_api.network_interfaces import create_network_interface, delete_network_interface
from ec2_api.route_tables import create_route, delete_route
from ec2_api.security_group_rules import authorize_security_group_ingress, revoke_security_group_ingress
from ec2_api.security_groups import create_security_group, delete_security_group
from ec2_api.subnets import create_subnet, delete_subnet
from ec2_api.vpcs import create_vpc, delete_vpc
from tests.ec2.network_env import image, net  # noqa: F401 (fixtures)

GIB = 1 << 30


async def _setup(net, image):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24",
                                           "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    web = (await create_security_group(ctx, {"GroupName": "web", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    app = (await create_security_group(ctx, {"GroupName": "app", "Description": "d", "VpcId": vpc_id}))["GroupId"]
    await authorize_security_group_ingress(ctx, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    await authorize_security_group_ingress(ctx, {"GroupId": app, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}]})
    front = (await run_instances(ctx, {"ImageId": image, "MinCount": 2, "MaxCount": 2, "SubnetId": subnet_id,
                                       "SecurityGroupIds": [web]}))["Instances"]
    back = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet_id,
                                      "SecurityGroupIds": [app]}))["Instances"][0]
    return ctx, vpc_id, subnet_id, web, app, front, back


async def test_desired_state_resolves_groups_routes_dhcp_and_hostnames(net, image):
    ctx, vpc_id, subnet_id, web, app, front, back = await _setup(net, image)
    state = await net.applied()
    assert [v.vpc_id for v in state.vpcs] == [vpc_id] and state.vpcs[0].cidrs == ("10.0.0.0/16",)
    (subnet,) = state.subnets
    assert (subnet.cidr, subnet.router, subnet.dns, subnet.domain_name) == (
        "10.0.1.0/24", "10.0.1.1", "10.0.0.2", "ec2.internal")
    assert subnet.routes == ()   # no internet gateway, no route out
    by_instance = {i.instance_id: i for i in state.interfaces}
    backend = by_instance[back["InstanceId"]]
    assert backend.hostname == f"ip-{back['PrivateIpAddress'].replace('.', '-')}.ec2.internal"
    front_ips = sorted(i["PrivateIpAddress"] for i in front)
    assert sorted(r.cidr for r in backend.rules if r.direction == "ingress") == [f"{ip}/32" for ip in front_ips]
    assert SecurityRule("ingress", "tcp", 8080, 8080, f"{front_ips[0]}/32") in backend.rules
    assert SecurityRule("egress", "all", -1, -1, "0.0.0.0/0") in backend.rules
    frontend = by_instance[front[0]["InstanceId"]]
    assert SecurityRule("ingress", "tcp", 22, 22, "0.0.0.0/0") in frontend.rules
    assert frontend.metadata_enabled and frontend.metadata_hop_limit == 1 and frontend.availability_zone == "us-east-1a"
    # an internet gateway and a default route; DHCP options; a rule revoked: each applied at once
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    main = (await net.db.fetchone("SELECT route_table_id FROM net_route_tables WHERE vpc_id = ?", (vpc_id,)))[0]
    await create_route(ctx, {"RouteTableId": main, "DestinationCidrBlock": "0.0.0.0/0", "GatewayId": igw})
    dopt = (await create_dhcp_options(ctx, {"DhcpConfigurations": [
        {"Key": "domain-name", "Values": ["corp.example"]},
        {"Key": "domain-name-servers", "Values": ["AmazonProvidedDNS", "10.0.0.53"]}]}))["DhcpOptions"]
    await associate_dhcp_options(ctx, {"DhcpOptionsId": dopt["DhcpOptionsId"], "VpcId": vpc_id})
    await revoke_security_group_ingress(ctx, {"GroupId": web, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "IpRanges": [{"CidrIp": "0.0.0.0/0"}]}]})
    await modify_instance_metadata_options(ctx, {"InstanceId": back["InstanceId"], "HttpEndpoint": "disabled",
                                                 "HttpPutResponseHopLimit": 3})
    # the runner applies within the debounce, without anyone asking
    for _ in range(100):
        if net.data_path.state.subnets and net.data_path.state.subnets[0].routes:
            if not any(r.from_port == 22 for i in net.data_path.state.interfaces for r in i.rules):
                break
        await asyncio.sleep(0.02)
    state = net.data_path.state
    (subnet,) = state.subnets
    assert [(r.destination, r.target) for r in subnet.routes] == [("0.0.0.0/0", "igw")]
    assert subnet.domain_name == "corp.example" and subnet.domain_name_servers == ("10.0.0.2", "10.0.0.53")
    assert not any(r.from_port == 22 for i in state.interfaces for r in i.rules)
    backend = {i.instance_id: i for i in state.interfaces}[back["InstanceId"]]
    assert (backend.metadata_enabled, backend.metadata_hop_limit) == (False, 3)
    await delete_route(ctx, {"RouteTableId": main, "DestinationCidrBlock": "0.0.0.0/0"})
    await detach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    # a stopped instance keeps its interface but loses its tap
    await stop_instances(ctx, {"InstanceIds": [back["InstanceId"]]})
    state = await net.applied()
    assert [i.instance_id for i in state.interfaces if i.interface_id == backend.interface_id] == [None]
    assert state.subnets[0].routes == ()


async def test_deleting_the_last_resource_leaves_an_empty_state(net, image):
    ctx, vpc_id, subnet_id, web, app, front, back = await _setup(net, image)
    spare = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]["NetworkInterfaceId"]
    assert len((await net.applied()).interfaces) == 4
    await terminate_instances(ctx, {"InstanceIds": [i["InstanceId"] for i in front] + [back["InstanceId"]]})
    state = await net.applied()
    assert [i.interface_id for i in state.interfaces] == [spare]
    await delete_network_interface(ctx, {"NetworkInterfaceId": spare})
    await revoke_security_group_ingress(ctx, {"GroupId": app, "IpPermissions": [
        {"IpProtocol": "tcp", "FromPort": 8080, "ToPort": 8080, "UserIdGroupPairs": [{"GroupId": web}]}]})
    for group in (app, web):
        await delete_security_group(ctx, {"GroupId": group})
    await delete_subnet(ctx, {"SubnetId": subnet_id})
    await delete_vpc(ctx, {"VpcId": vpc_id})
    state = await net.applied()
    assert (state.vpcs, state.subnets, state.interfaces) == ((), (), ())
    assert net.data_path.applied[-1] == state


async def _imds(path: str, interface_id: str, request: bytes) -> bytes:
    reader, writer = await asyncio.open_unix_connection(path)
    writer.write(f"NIMBO-IMDS {interface_id}\r\n".encode() + request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    return data


async def test_metadata_service_over_the_relay_socket(net, image):
    ctx = net.ctx()
    out = await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1})
    instance = out["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    await net.applied()
    path = socket_path(net.config)
    answer = await _imds(path, eni, b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(instance["InstanceId"].encode())
    token = await _imds(path, eni, b"PUT /latest/api/token HTTP/1.1\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\n"
                                   b"Connection: close\r\n\r\n")
    assert token.startswith(b"HTTP/1.1 200")
    value = token.split(b"\r\n\r\n", 1)[1]
    answer = await _imds(path, eni, b"GET /latest/meta-data/local-ipv4 HTTP/1.1\r\nX-aws-ec2-metadata-token: "
                         + value + b"\r\nConnection: close\r\n\r\n")
    assert answer.endswith(instance["PrivateIpAddress"].encode())
    assert await _imds(path, "eni-0123456789abcdef0", b"GET / HTTP/1.1\r\n\r\n") == b""   # unknown: closed
    await modify_instance_metadata_options(ctx, {"InstanceId": instance["InstanceId"], "HttpEndpoint": "disabled"})
    answer = await _imds(path, eni, b"GET /latest/meta-data/ HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 404")


async def test_counters_become_rated_data_transfer(net, image):
    from billing.prices import DEFAULT_PRICE_LIST, parse_price_list
    from billing.rating import rate_pending
    from billing.schema import SCHEMA as BILLING
    from ec2_api.common import to_us
    await net.db.migrate(BILLING)
    ctx = net.ctx()
    instance = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1}))["Instances"][0]
    eni = instance["NetworkInterfaces"][0]["NetworkInterfaceId"]
    await net.applied()
    net.data_path.set_counters[eni] = InterfaceCounters(
        eni, bytes_in=9 * GIB, bytes_out=9 * GIB, bytes_in_internet=GIB, bytes_out_internet=2 * GIB,
        bytes_in_other_az=GIB // 2, bytes_out_other_az=GIB)
    assert await net.sync.sample_counters() == 2 * GIB + GIB + GIB // 2 + GIB
    net.clock.advance(60)
    net.data_path.set_counters[eni].bytes_out_internet = 3 * GIB   # one more GiB out
    assert await net.sync.sample_counters() == GIB
    net.clock.advance(3600)
    with open(DEFAULT_PRICE_LIST) as fh:
        prices = parse_price_list(fh.read(), DEFAULT_PRICE_LIST)
    await rate_pending(net.db, prices, to_us(net.clock()))
    rows = await net.db.fetchall("SELECT usage_type, operation, amount, cost FROM billing_line_items WHERE"
                                 " resource_id = ?", (eni,))
    by_type = {(r["usage_type"].split("-", 1)[1] if r["usage_type"].startswith("USE1") else r["usage_type"],
                r["operation"]): r for r in rows}
    assert Decimal(by_type[("DataTransfer-Out-Bytes", "RunInstances")]["amount"]) == 3
    assert Decimal(by_type[("DataTransfer-Out-Bytes", "RunInstances")]["cost"]) == Decimal("0.27")
    assert Decimal(by_type[("DataTransfer-In-Bytes", "RunInstances")]["cost"]) == 0
    assert Decimal(by_type[("DataTransfer-Regional-Bytes", "InterZone-Out")]["cost"]) == Decimal("0.01")
    assert Decimal(by_type[("DataTransfer-Regional-Bytes", "InterZone-In")]["cost"]) == Decimal("0.005")
    assert sum(Decimal(r["cost"]) for r in rows) == Decimal("0.285")   # inside the zone: free, not recorded


async def test_a_restart_reapplies_the_same_state_and_adopts_older_instances(net, image):
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    instance = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "SubnetId": subnet_id,
                                          "MetadataOptions": {"HttpPutResponseHopLimit": 2}}))["Instances"][0]
    before = await net.applied()
    path = net.db.path

    async def forget_interfaces():   # as an instance launched before interfaces were stored
        from storage.db import Database
        db = await Database.open(path)
        async with db.transaction() as tx:
            await tx.execute("DELETE FROM net_interface_addresses")
            await tx.execute("DELETE FROM net_interface_groups")
            await tx.execute("DELETE FROM net_interfaces")
        await db.close()
    await net.restart(between=forget_interfaces)
    assert net.data_path.opened == 2 and net.data_path.closed == 1
    after = await net.applied()
    assert after == before   # the same interface id, MAC, address, groups and hop limit
    (iface,) = after.interfaces
    assert iface.instance_id == instance["InstanceId"] and iface.metadata_hop_limit == 2
    assert iface.interface_id == instance["NetworkInterfaces"][0]["NetworkInterfaceId"]


def test_the_config_chooses_the_data_path(monkeypatch):
    from types import SimpleNamespace

    import pytest as _pytest

    from backend.network.fake import FakeDataPath
    from ec2_api.network_sync import make_data_path
    base = dict(data_dir="/tmp/nimbo-x", backend="qemu", public_ip_pool="198.18.0.0/24")
    assert make_data_path(SimpleNamespace(**base, network="user")) is None
    fake = make_data_path(SimpleNamespace(**base, network="fake"))
    assert isinstance(fake, FakeDataPath) and fake.imds_socket == "/tmp/nimbo-x/imds.sock"
    assert make_data_path(SimpleNamespace(**{**base, "backend": "fake"}, network="auto")) is None
    monkeypatch.setattr("os.geteuid", lambda: 1000)
    assert make_data_path(SimpleNamespace(**base, network="auto")) is None   # not root: user-mode
    with _pytest.raises(ValueError):
        make_data_path(SimpleNamespace(**base, network="vxlan"))


async def test_metadata_shows_interfaces_and_public_addresses(net, image):
    from ec2_api.addresses import allocate_address, associate_address
    ctx = net.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24"}))["Subnet"]["SubnetId"]
    igw = (await create_internet_gateway(ctx, {}))["InternetGateway"]["InternetGatewayId"]
    await attach_internet_gateway(ctx, {"InternetGatewayId": igw, "VpcId": vpc_id})
    instance = (await run_instances(ctx, {"ImageId": image, "MinCount": 1, "MaxCount": 1, "NetworkInterfaces": [
        {"DeviceIndex": 0, "SubnetId": subnet_id}, {"DeviceIndex": 1, "SubnetId": subnet_id}]}))["Instances"][0]
    address = await allocate_address(ctx, {})
    await associate_address(ctx, {"AllocationId": address["AllocationId"],
                                  "NetworkInterfaceId": instance["NetworkInterfaces"][0]["NetworkInterfaceId"]})
    await net.applied()
    path, eni = socket_path(net.config), instance["NetworkInterfaces"][0]["NetworkInterfaceId"]

    async def get(what: str) -> str:
        answer = await _imds(path, eni, f"GET /latest/meta-data/{what} HTTP/1.1\r\nConnection: close\r\n\r\n".encode())
        return answer.split(b"\r\n\r\n", 1)[1].decode()
    assert await get("public-ipv4") == address["PublicIp"]
    assert await get("public-hostname") == f"ec2-{address['PublicIp'].replace('.', '-')}.compute-1.amazonaws.com"
    macs = (await get("network/interfaces/macs/")).split()
    assert sorted(m.rstrip("/") for m in macs) == sorted(n["MacAddress"] for n in instance["NetworkInterfaces"])
    second = instance["NetworkInterfaces"][1]
    assert await get(f"network/interfaces/macs/{second['MacAddress']}/device-number") == "1"
    assert await get(f"network/interfaces/macs/{second['MacAddress']}/local-ipv4s") == second["PrivateIpAddress"]
    first = instance["NetworkInterfaces"][0]["MacAddress"]
    assert await get(f"network/interfaces/macs/{first}/public-ipv4s") == address["PublicIp"]
