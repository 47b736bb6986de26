"""The tiny image's cache records real paths: a cache first built through a symlink (conformance's
``--nimbo-tiny-image``, tests/e2e/test_ec2_api.py) stays usable once the link is gone, and a
kernel.json an older build wrote with such a link's paths is repaired, not trusted.

Builds from the .deb files of the shared cache (``NIMBO_TINY_IMAGE_CACHE``); skipped without them."""
from __future__ import annotations

import json
import os
import shutil

import pytest

from backend.tiny_image import build_tiny_image

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.environ.get("NIMBO_TINY_IMAGE_CACHE", os.path.join(HERE, ".cache", "tiny-image"))


def test_cache_built_through_a_symlink_outlives_the_link(tmp_path):
    debs = os.path.join(SHARED, "debs")
    if not os.path.isdir(debs) or len(os.listdir(debs)) < 2:
        pytest.skip("no downloaded packages in the shared tiny image cache")
    for tool in ("dpkg-deb", "qemu-img"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is missing")
    real = tmp_path / "real"
    shutil.copytree(debs, real / "debs")
    link = tmp_path / "link"
    link.symlink_to(real)
    first = build_tiny_image(str(link))
    link.unlink()
    for key in ("kernel", "initrd", "disk"):
        assert first[key].startswith(str(real) + os.sep) and os.path.exists(first[key]), first
    (kernel_json,) = real.glob("kernel-*/kernel.json")
    info = json.loads(kernel_json.read_text())
    assert info["dir"] == str(kernel_json.parent)
    assert build_tiny_image(str(real)) == first      # the cached build, as it is

    # what an older build wrote through a link that is gone: the next build finds kdir's files
    info.update(dir="/gone/kernel-x", kernel="/gone/kernel-x/" + os.path.basename(info["kernel"]))
    kernel_json.write_text(json.dumps(info))
    again = build_tiny_image(str(real), force=True)
    assert again["kernel"] == first["kernel"] and os.path.exists(again["kernel"])
