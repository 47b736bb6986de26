"""``nimbo image build-debian``'s registration: the build's kernel, initrd and PARTUUID command
line become a public ``debian-12-amd64-*`` AMI of the admin account in every region, instances
of it boot that kernel, and ``--if-missing`` keeps a registered image without building.
(The build itself is stood in for here; tests/vm/test_debian_image.py runs the real one.)"""
from __future__ import annotations

import pytest

from backend import debian_image
from ec2_api import builtin_images
from ec2_api.images import describe_images
from ec2_api.instances import run_instances
from tests.ec2.conftest import ADMIN, ALICE
from tests.ec2.helpers import wire

CMDLINE = debian_image.kernel_cmdline("0c3e2a50-58a8-4b8b-9d0e-7b1e3c1a9f10")


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """Replace the minutes-long build by small stand-in files; count the builds."""
    calls = []
    art = tmp_path / "debian-build"
    art.mkdir()
    (art / "disk.img").write_bytes(b"\0" * (4 * 1024 * 1024))
    (art / "vmlinux").write_bytes(b"\x7fELF" + b"\0" * 100)
    (art / "initrd.img").write_bytes(b"\x1f\x8b" + b"\0" * 100)

    def build(out_dir, suite, *, force=False, progress=None):
        calls.append((out_dir, suite, force))
        if progress:
            progress("building")
        return {"disk": str(art / "disk.img"), "kernel": str(art / "vmlinux"), "initrd": str(art / "initrd.img"),
                "cmdline": CMDLINE, "suite": suite, "release": debian_image.release_of(suite),
                "kernel_version": "6.1.0-50-cloud-amd64", "packages": {"cloud-init": "22.4.2-1"}}

    monkeypatch.setattr(debian_image, "build_debian_image", build)
    return calls


async def test_registers_a_public_debian_ami_that_boots_its_kernel(env, fake_build):
    lines = []
    image_id = await builtin_images.build_debian(env.db, env.config, suite="bookworm", cache_dir="/c/deb",
                                                 progress=lines.append)
    assert lines == ["building"] and fake_build == [("/c/deb", "bookworm", False)]
    out = await describe_images(env.ctx(ALICE), {"Owners": ["nimbo"],
                                                 "Filters": [{"Name": "name", "Values": ["debian-12-amd64-*"]}]})
    wire("DescribeImages", out)
    (image,) = out["Images"]
    assert image["ImageId"] == image_id and image["Public"] is True and image["OwnerId"] == ADMIN
    assert image["Name"].startswith("debian-12-amd64-") and image["ImageOwnerAlias"] == "nimbo"
    assert "cloud-init 22.4.2-1" in image["Description"] and "Debian 12 (bookworm)" in image["Description"]
    eu = (await describe_images(env.ctx(ALICE, "eu-west-1"), {"Owners": ["nimbo"]}))["Images"]
    assert [i["Name"] for i in eu] == [image["Name"]] and eu[0]["ImageId"] != image_id

    out = await run_instances(env.ctx(ALICE), {"ImageId": image_id, "MinCount": 1, "MaxCount": 1,
                                               "InstanceType": "t3.micro"})
    await env.settle()
    spec = await env.spec(out["Instances"][0]["InstanceId"])
    assert spec.cmdline == CMDLINE and spec.kernel.endswith("/kernel") and spec.initrd.endswith("/initrd")
    assert spec.smbios_uuid.startswith("ec2")


async def test_if_missing_keeps_the_registered_image_without_building(env, fake_build):
    first = await builtin_images.build_debian(env.db, env.config, suite="bookworm", cache_dir="/c")
    again = await builtin_images.build_debian(env.db, env.config, suite="bookworm", if_missing=True, cache_dir="/c")
    assert again == first
    assert len(fake_build) == 1
    assert await builtin_images.find_debian_image(env.db, "us-east-1", "bookworm") == first
    # another suite is another image; without if_missing a newer image is registered
    trixie = await builtin_images.build_debian(env.db, env.config, suite="trixie", if_missing=True, cache_dir="/c")
    assert trixie != first and len(fake_build) == 2
    newer = await builtin_images.build_debian(env.db, env.config, suite="bookworm", cache_dir="/c")
    assert newer not in (first, trixie)
    assert await builtin_images.find_debian_image(env.db, "us-east-1", "bookworm") == newer


async def test_bad_suite_is_refused_before_building(env, fake_build):
    with pytest.raises(debian_image.DebianImageError):
        await builtin_images.build_debian(env.db, env.config, suite="../etc")
    assert fake_build == []


def test_cli_reports_a_build_that_cannot_run(tmp_path):
    import subprocess   # noqa: PLC0415
    import sys   # noqa: PLC0415
    out = subprocess.run([sys.executable, "-m", "gateway.cli", "image", "build-debian", "--data-dir",
                          str(tmp_path / "data"), "--suite", "../etc"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and out.stdout == ""
    assert "the Debian image could not be built: invalid Debian suite '../etc'" in out.stderr
