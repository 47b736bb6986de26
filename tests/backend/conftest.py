"""Fixtures for the backend tests: the tiny guest image (built once, cached on disk)."""
from __future__ import annotations

import os
import shutil

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
# Cached across runs (ignored by git through tests/backend/.gitignore); override with the env var.
TINY_IMAGE_CACHE = os.environ.get("NIMBO_TINY_IMAGE_CACHE", os.path.join(HERE, ".cache", "tiny-image"))


def _missing_tools() -> list[str]:
    tools = ["qemu-system-x86_64", "qemu-img", "socat", "apt-get", "dpkg-deb"]
    return [t for t in tools if shutil.which(t) is None]


@pytest.fixture(scope="session")
def tiny_image() -> dict:
    missing = _missing_tools()
    if missing:
        pytest.skip(f"missing tools for VM tests: {', '.join(missing)}")
    from backend.tiny_image import build_tiny_image
    return build_tiny_image(TINY_IMAGE_CACHE)
