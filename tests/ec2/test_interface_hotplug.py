"""AttachNetworkInterface / DetachNetworkInterface on a running instance reach the guest at once
(the driver's attach_nic / detach_nic: a hot-plug) where the data path is on; on a stopped
instance, or with user-mode networking, the interfaces follow at the next start."""
from __future__ import annotations

from ec2_api.instance_actions import start_instances, stop_instances
from ec2_api.instances import run_instances
from ec2_api.network_interfaces import (attach_network_interface, create_network_interface,
                                        detach_network_interface)
from ec2_api.subnets import create_subnet
from ec2_api.vpcs import create_vpc
from tests.ec2.network_env import image, net, usermode  # noqa: F401 (fixtures)


async def _running_instance(env, image_id):
    ctx = env.ctx()
    vpc_id = (await create_vpc(ctx, {"CidrBlock": "10.0.0.0/16"}))["Vpc"]["VpcId"]
    subnet_id = (await create_subnet(ctx, {"VpcId": vpc_id, "CidrBlock": "10.0.1.0/24",
                                           "AvailabilityZone": "us-east-1a"}))["Subnet"]["SubnetId"]
    instance_id = (await run_instances(ctx, {"ImageId": image_id, "MinCount": 1, "MaxCount": 1,
                                             "SubnetId": subnet_id}))["Instances"][0]["InstanceId"]
    await env.settle()
    eni_id = (await create_network_interface(ctx, {"SubnetId": subnet_id}))["NetworkInterface"]["NetworkInterfaceId"]
    return ctx, instance_id, eni_id


def _nics(env, instance_id):
    return [n.interface_id for n in env.driver._vm(instance_id).spec.nics]   # noqa: SLF001


async def test_attach_and_detach_hot_plug_into_a_running_guest(net, image):
    ctx, instance_id, eni_id = await _running_instance(net, image)
    primary = _nics(net, instance_id)
    assert len(primary) == 1
    out = await attach_network_interface(ctx, {"NetworkInterfaceId": eni_id, "InstanceId": instance_id,
                                               "DeviceIndex": 1})
    assert _nics(net, instance_id) == primary + [eni_id]          # in the guest now, not at the next start
    assert eni_id in {i.interface_id for i in (await net.applied()).interfaces if i.instance_id}
    await detach_network_interface(ctx, {"AttachmentId": out["AttachmentId"]})
    assert _nics(net, instance_id) == primary
    assert eni_id not in {i.interface_id for i in (await net.applied()).interfaces if i.instance_id}


async def test_a_stopped_instance_gets_the_interface_at_its_next_start(net, image):
    ctx, instance_id, eni_id = await _running_instance(net, image)
    await stop_instances(ctx, {"InstanceIds": [instance_id]})
    await net.settle()
    primary = _nics(net, instance_id)
    await attach_network_interface(ctx, {"NetworkInterfaceId": eni_id, "InstanceId": instance_id, "DeviceIndex": 1})
    assert _nics(net, instance_id) == primary                     # nothing plugged into a stopped VM
    await start_instances(ctx, {"InstanceIds": [instance_id]})
    await net.settle()
    assert _nics(net, instance_id) == primary + [eni_id]


async def test_user_mode_networking_plugs_nothing(usermode, tmp_path):
    from ec2_api.images import register_tiny_image
    (tmp_path / "disk.img").write_bytes(b"\0" * (1 << 20))
    image_id = await register_tiny_image(usermode.db, usermode.config, {"disk": str(tmp_path / "disk.img")},
                                         now=usermode.clock())
    ctx, instance_id, eni_id = await _running_instance(usermode, image_id)
    await attach_network_interface(ctx, {"NetworkInterfaceId": eni_id, "InstanceId": instance_id, "DeviceIndex": 1})
    assert _nics(usermode, instance_id) == []
