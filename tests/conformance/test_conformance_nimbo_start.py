"""``--start-nimbo``'s process handling, with a stand-in for ``gateway.cli`` (not Nimbo itself)."""
from __future__ import annotations

import os
import textwrap

import pytest

from conformance.errors import SetupError
from conformance.nimbo import NimboProcess, parse_exports

FAKE_GATEWAY = textwrap.dedent('''
    import argparse, http.server, os, sys, time
    parser = argparse.ArgumentParser()
    parser.add_argument("command")
    parser.add_argument("--port", type=int)
    parser.add_argument("--data-dir")
    parser.add_argument("--fail", action="store_true")
    args = parser.parse_args()
    if args.command == "credentials":
        print("export AWS_ENDPOINT_URL=http://127.0.0.1:1")
        print("export AWS_ACCESS_KEY_ID=AKIAFAKE")
        print("export AWS_SECRET_ACCESS_KEY='se cret'")
        print("export AWS_DEFAULT_REGION=eu-west-1")
        sys.exit(0)
    if args.fail:
        print("cannot start: no database", flush=True)
        sys.exit(3)
    server = http.server.HTTPServer(("127.0.0.1", args.port), http.server.BaseHTTPRequestHandler)
    time.sleep(0.3)  # the endpoint file comes once the socket listens
    with open(os.path.join(args.data_dir, "endpoint"), "w") as fh:
        fh.write(f"http://127.0.0.1:{args.port}\\n")
    server.serve_forever()
''')


@pytest.fixture
def fake(tmp_path):
    (tmp_path / "fakegw.py").write_text(FAKE_GATEWAY)
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    return lambda **kw: NimboProcess(module="fakegw", cwd=str(tmp_path), env=env, **kw)


def test_it_waits_for_the_endpoint_file_and_takes_the_credentials(fake):
    process = fake()
    try:
        target = process.start(timeout=20)
        assert target.endpoint == f"http://127.0.0.1:{process.port}"
        assert (target.access_key, target.secret_key, target.region) == (
            "AKIAFAKE", "se cret", "eu-west-1")
        data_dir = process.data_dir
    finally:
        process.stop()
    assert process.process is None
    assert not os.path.exists(data_dir)  # its own temporary directory is removed


def test_a_server_that_exits_is_a_setup_error_with_its_log(fake):
    process = fake(extra_args=["--fail"])
    with pytest.raises(SetupError, match="cannot start: no database"):
        process.start(timeout=20)
    process.stop()


def test_parse_exports():
    text = "export A=1\nexport B='x y'\n# comment\nexport C=\n"
    assert parse_exports(text) == {"A": "1", "B": "x y", "C": ""}
