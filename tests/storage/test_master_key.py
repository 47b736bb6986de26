"""The data directory's master key: made once, kept private, shared by every process."""
import os

import pytest

from storage import master_key


def test_made_once_private_and_stable(tmp_path):
    key = master_key.load_or_create(str(tmp_path))
    assert len(key) == 32
    path = tmp_path / "master.key"
    assert path.stat().st_mode & 0o777 == 0o600
    assert master_key.load_or_create(str(tmp_path)) == key
    assert [p.name for p in tmp_path.iterdir()] == ["master.key"]   # no temp file left


def test_refuses_a_key_others_can_read_or_a_short_file(tmp_path):
    master_key.load_or_create(str(tmp_path))
    path = tmp_path / "master.key"
    os.chmod(path, 0o644)
    with pytest.raises(master_key.MasterKeyError, match="chmod 600"):
        master_key.load_or_create(str(tmp_path))
    path.write_bytes(b"short")
    os.chmod(path, 0o600)
    with pytest.raises(master_key.MasterKeyError, match="32-byte"):
        master_key.load_or_create(str(tmp_path))
