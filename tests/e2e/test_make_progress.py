"""`make run` and `make test` say what they are doing while they install and build (issue 9
item 23), and still stop when an installation fails. Checked on make's dry run (nothing runs)."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, tmp_path) -> str:
    done = subprocess.run(["make", "-n", target, f"VENV={tmp_path}/venv"], cwd=REPO, text=True,
                          capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("target,steps", [
    ("run", ["==> creating the virtual environment", "==> installing Nimbo and its Python packages",
             "==> the tiny Linux image", "==> starting Nimbo"]),
    ("test", ["==> creating the virtual environment", "==> installing Nimbo and its Python packages",
              "==> installing the test tools"]),
])
def test_every_slow_step_announces_itself(tmp_path, target, steps):
    out = dry_run(target, tmp_path)
    positions = [out.find(step) for step in steps]
    assert -1 not in positions and positions == sorted(positions), out
    for line in out.splitlines():
        if "pip install" in line and "-e " in line:
            assert " -q " not in line            # pip's Collecting lines show progress ...
            assert "set -o pipefail" in line     # ... and its failure still fails the target


def test_apt_ensure_announces_what_it_installs():
    with open(f"{REPO}/.ci/apt-ensure") as fh:
        script = fh.read()
    assert script.index('echo "==> installing Debian packages') < script.index("apt-get update")
