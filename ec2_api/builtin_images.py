"""Nimbo's built-in Debian cloud image as a public AMI: ``nimbo image build-debian``.

The image is built by ``backend.debian_image`` (minutes; cached in ``<data_dir>/debian-image``)
and registered through ``images.register_tiny_image`` under Debian's own AMI naming,
``debian-<release>-amd64-<yyyymmdd>`` (so that ``Name=name,Values=debian-12-amd64-*`` filters,
as Terraform and Ansible examples use, find it), owned by the admin account, public, with
direct kernel boot (kernel, initrd and ``root=PARTUUID=...`` command line from the build).

Crash story: nothing persistent of its own; the build is crash safe in its cache folder, and
registration is ``register_tiny_image``'s (files copied into the image's folder, then one row).
"""
from __future__ import annotations

import asyncio
from typing import Any, Callable, Optional

from ec2_api import images


def name_prefix(suite: str) -> str:
    from backend.debian_image import release_of  # noqa: PLC0415
    return f"debian-{release_of(suite)}-amd64-"


def description(manifest: dict) -> str:
    packages = manifest.get("packages") or {}
    return (f"Debian {manifest.get('release')} ({manifest.get('suite')}) with cloud-init "
            f"{packages.get('cloud-init', '')}, kernel {manifest.get('kernel_version', '')}, built by Nimbo").strip()


async def find_debian_image(db: Any, region: str, suite: str) -> Optional[str]:
    return await images.find_tiny_image(db, region, prefix=name_prefix(suite))


async def build_debian(db: Any, config: Any, *, suite: str, if_missing: bool = False, force: bool = False,
                       cache_dir: Optional[str] = None, progress: Optional[Callable[[str], None]] = None) -> str:
    """Build (or reuse the cached build of) the Debian image and register it in every region;
    with ``if_missing`` an image registered already is kept and nothing is built."""
    from backend.debian_image import build_debian_image, check_suite  # noqa: PLC0415
    check_suite(suite)
    prefix = name_prefix(suite)
    if if_missing:
        found = [await images.find_tiny_image(db, region, prefix=prefix) for region in config.regions]
        if all(found):
            return found[0]
    manifest = await asyncio.to_thread(build_debian_image, cache_dir or config.path("debian-image"),
                                       suite, force=force, progress=progress)
    return await images.register_tiny_image(db, config, manifest, if_missing=if_missing, prefix=prefix,
                                            description=description(manifest))
