"""`nimbo admin` and `nimbo billing` for people (issue 9 item 24): help for every subcommand,
headers on list output, --data-dir before or after the subcommand."""
from __future__ import annotations

import asyncio

import pytest

from gateway import cli

ADMIN_COMMANDS = ["create-account", "list-accounts", "create-key", "list-keys", "disable-key",
                  "enable-key", "delete-key"]


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("NIMBO_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv("NIMBO_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)
    path = str(tmp_path / "served")

    async def bootstrap(accounts):
        await accounts.bootstrap()
        return 0
    asyncio.run(cli._with_accounts(path, bootstrap))     # what `nimbo serve` leaves behind
    return path


def test_every_admin_subcommand_has_help(capsys):
    with pytest.raises(SystemExit):
        cli.main(["admin", "-h"])
    listing = capsys.readouterr().out
    for command in ADMIN_COMMANDS:
        line = next(line for line in listing.splitlines() if line.strip().startswith(command))
        assert len(line.split()) > 1, f"{command} has no help text"
        with pytest.raises(SystemExit):
            cli.main(["admin", command, "-h"])
        own = capsys.readouterr().out
        assert "--data-dir" in own and len(own.split("\n\n")[1].strip()) > 10, command


@pytest.mark.sqlite_only   # finds the data directory by its nimbo.db, which the PostgreSQL run's fixture has not
def test_lists_have_headers_and_data_dir_goes_before_or_after(data_dir, capsys):
    assert cli.main(["admin", "list-accounts", "--data-dir", data_dir]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == ["ACCOUNT_ID", "NAME", "ROLE", "CANONICAL_USER_ID"]
    assert out[1].split("\t")[1:3] == ["admin", "admin"]
    assert cli.main(["admin", "--data-dir", data_dir, "list-keys"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == ["ACCESS_KEY_ID", "ACCOUNT_ID", "STATUS"] and len(out) == 2
    assert cli.main(["admin", "create-account", "alice", "--data-dir", data_dir]) == 0
    capsys.readouterr()
    assert cli.main(["billing", "--data-dir", data_dir, "report", "--period", "2026-11"]) == 0
    assert "Nimbo bill for 2026-11" in capsys.readouterr().out
    assert cli.main(["billing", "report", "--period", "2026-11", "--data-dir", data_dir]) == 0
