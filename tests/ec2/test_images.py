"""Images: the tiny image, visibility and launch permissions across accounts, CreateImage from an
instance, a local file
registered for the CLI (S3 uploads: tests/ec2/test_image_import.py)."""
from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from ec2_api import errors
from ec2_api.image_import import create_image, register_image_file
from ec2_api.images import (AuthFailure, deregister_image, describe_image_attribute, describe_images,
                            find_tiny_image, modify_image_attribute, register_tiny_image)
from ec2_api.instance_actions import terminate_instances
from ec2_api.instances import run_instances
from tests.ec2.conftest import ADMIN, ALICE, BOB
from tests.ec2.helpers import wire

needs_qemu_img = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is needed")


async def images_of(env, account=ALICE, **params):
    out = await describe_images(env.ctx(account), params)
    wire("DescribeImages", out)
    return out["Images"]


async def test_tiny_image_is_public_and_registered_once(env, tiny_image, tmp_path):
    (image,) = await images_of(env, ImageIds=[tiny_image])
    assert image["Public"] is True and image["OwnerId"] == ADMIN and image["ImageOwnerAlias"] == "nimbo"
    assert image["Name"] == "nimbo-tiny-20260301" and image["State"] == "available"
    assert image["RootDeviceName"] == "/dev/xvda" and image["RootDeviceType"] == "ebs"
    assert image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 1
    assert image["CreationDate"] == "2026-03-01T12:00:00.000Z"
    assert await find_tiny_image(env.db, "us-east-1") == tiny_image
    art = tmp_path / "artifacts"
    again = await register_tiny_image(env.db, env.config, {"disk": str(art / "disk.img"),
                                                           "kernel": str(art / "vmlinux")}, if_missing=True)
    assert again == tiny_image
    newer = await register_tiny_image(env.db, env.config, {"disk": str(art / "disk.img"),
                                                           "kernel": str(art / "vmlinux")}, now=env.clock())
    assert newer != tiny_image
    names = sorted(i["Name"] for i in await images_of(env, Owners=["nimbo"]))
    assert names == ["nimbo-tiny-20260301", "nimbo-tiny-20260301-2"]
    eu = (await describe_images(env.ctx(ALICE, "eu-west-1"), {}))["Images"]
    assert len(eu) == 2 and all(i["ImageId"] not in (tiny_image, newer) for i in eu)


async def test_owners_executable_users_and_filters(env, tiny_image):
    assert [i["ImageId"] for i in await images_of(env)] == [tiny_image]
    assert await images_of(env, Owners=["self"]) == []
    assert [i["ImageId"] for i in await images_of(env, Owners=[ADMIN])] == [tiny_image]
    assert [i["ImageId"] for i in await images_of(env, ExecutableUsers=["all"])] == [tiny_image]
    assert await images_of(env, Filters=[{"Name": "is-public", "Values": ["false"]}]) == []
    assert len(await images_of(env, Filters=[{"Name": "name", "Values": ["nimbo-tiny-*"]},
                                             {"Name": "state", "Values": ["available"]},
                                             {"Name": "architecture", "Values": ["x86_64"]},
                                             {"Name": "image-type", "Values": ["machine"]},
                                             {"Name": "owner-id", "Values": [ADMIN]}])) == 1
    with pytest.raises(errors.InvalidAMIIDNotFound):
        await images_of(env, ImageIds=["ami-0123456789abcdef0"])
    with pytest.raises(errors.EC2Error) as caught:
        await images_of(env, ImageIds=["nope"])
    assert caught.value.code == "InvalidAMIID.Malformed"


async def launch(env, image, account=ALICE):
    out = await run_instances(env.ctx(account), {"ImageId": image, "MinCount": 1, "MaxCount": 1,
                                                 "InstanceType": "t3.nano"})
    await env.settle()
    return out["Instances"][0]["InstanceId"]


@needs_qemu_img
async def test_create_image_share_and_deregister(env, tiny_image):
    instance_id = await launch(env, tiny_image)
    out = await create_image(env.ctx(), {"InstanceId": instance_id, "Name": "golden (v1)", "Description": "mine",
                                         "TagSpecifications": [{"ResourceType": "image",
                                                                "Tags": [{"Key": "team", "Value": "a"}]}]})
    wire("CreateImage", out)
    image_id = out["ImageId"]
    (image,) = await images_of(env, ImageIds=[image_id])
    assert image["State"] in ("pending", "available")
    await env.settle()
    (image,) = await images_of(env, ImageIds=[image_id])
    assert image["State"] == "available" and image["Public"] is False and image["OwnerId"] == ALICE
    assert image["SourceInstanceId"] == instance_id and image["Tags"] == [{"Key": "team", "Value": "a"}]
    assert os.path.exists(os.path.join(env.config.data_dir, "images", image_id, "disk.qcow2"))
    with pytest.raises(errors.InvalidAMINameDuplicate):
        await create_image(env.ctx(), {"InstanceId": instance_id, "Name": "golden (v1)"})
    # Bob neither sees nor launches it until it is shared with him
    assert [i["ImageId"] for i in await images_of(env, BOB)] == [tiny_image]
    with pytest.raises(errors.InvalidAMIIDNotFound):
        await launch(env, image_id, BOB)
    await modify_image_attribute(env.ctx(), {"ImageId": image_id,
                                             "LaunchPermission": {"Add": [{"UserId": BOB}]}})
    attribute = await describe_image_attribute(env.ctx(), {"ImageId": image_id, "Attribute": "launchPermission"})
    assert wire("DescribeImageAttribute", attribute)["LaunchPermissions"] == [{"UserId": BOB}]
    assert {i["ImageId"] for i in await images_of(env, BOB)} == {tiny_image, image_id}
    assert [i["ImageId"] for i in await images_of(env, BOB, ExecutableUsers=["self"])] == [image_id]
    assert [i["ImageId"] for i in await images_of(env, ALICE, ExecutableUsers=[BOB])] == [image_id]
    shared = (await images_of(env, BOB, ImageIds=[image_id]))[0]
    assert shared["Tags"] == []   # tags stay with the owner
    bob_instance = await launch(env, image_id, BOB)
    with pytest.raises(AuthFailure):
        await deregister_image(env.ctx(BOB), {"ImageId": image_id})
    with pytest.raises(AuthFailure):
        await modify_image_attribute(env.ctx(BOB), {"ImageId": image_id,
                                                    "LaunchPermission": {"Add": [{"Group": "all"}]}})
    await modify_image_attribute(env.ctx(), {"ImageId": image_id, "LaunchPermission": {
        "Add": [{"Group": "all"}], "Remove": [{"UserId": BOB}]}})
    (image,) = await images_of(env, ImageIds=[image_id])
    assert image["Public"] is True
    await modify_image_attribute(env.ctx(), {"ImageId": image_id, "Description": {"Value": "new words"}})
    out = await describe_image_attribute(env.ctx(), {"ImageId": image_id, "Attribute": "description"})
    assert out["Description"] == {"Value": "new words"}
    assert (await deregister_image(env.ctx(), {"ImageId": image_id}))["Return"] is True
    with pytest.raises(errors.InvalidAMIIDNotFound):
        await images_of(env, ImageIds=[image_id])
    folder = os.path.join(env.config.data_dir, "images", image_id)
    assert os.path.isdir(folder)   # Bob's instance still boots from it
    await terminate_instances(env.ctx(BOB), {"InstanceIds": [bob_instance]})
    await env.settle()
    assert not os.path.exists(folder)


def make_disk(path, fmt: str, size: str = "8M") -> None:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, str(path), size], check=True)


@needs_qemu_img
async def test_register_local_file_for_the_cli(env, tmp_path):
    disk = tmp_path / "local.qcow2"
    make_disk(disk, "qcow2", "2G")
    image_id = await register_image_file(env.db, env.config, account_id=ALICE, region="us-east-1",
                                         path=str(disk), name="local")
    (image,) = await images_of(env, ImageIds=[image_id])
    assert image["State"] == "available" and image["BlockDeviceMappings"][0]["Ebs"]["VolumeSize"] == 2
    with pytest.raises(errors.EC2Error) as caught:
        await run_instances(env.ctx(), {"ImageId": image_id, "MinCount": 1, "MaxCount": 1, "BlockDeviceMappings": [
            {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 1}}]})
    assert caught.value.code == "InvalidBlockDeviceMapping"
    out = await run_instances(env.ctx(), {"ImageId": image_id, "MinCount": 1, "MaxCount": 1, "BlockDeviceMappings": [
        {"DeviceName": "/dev/xvda", "Ebs": {"VolumeSize": 20, "DeleteOnTermination": False}}]})
    await env.settle()
    spec = await env.spec(out["Instances"][0]["InstanceId"])
    info = subprocess.run(["qemu-img", "info", "-U", "--output=json", spec.root_disk], capture_output=True,
                          check=True, text=True).stdout
    assert '"virtual-size": 21474836480' in info


async def test_every_image_attribute_has_the_model_shape(env, tiny_image):
    from ec2_api.images import _ATTRIBUTES
    for attribute in sorted(_ATTRIBUTES):
        out = await describe_image_attribute(env.ctx(ADMIN), {"ImageId": tiny_image, "Attribute": attribute})
        assert wire("DescribeImageAttribute", out)["ImageId"] == tiny_image
    with pytest.raises(AuthFailure):
        await describe_image_attribute(env.ctx(ALICE), {"ImageId": tiny_image, "Attribute": "launchPermission"})
