"""Key pairs: fingerprints checked against values computed independently by openssl and ssh-keygen."""
from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess

import pytest

from ec2_api import errors
from ec2_api.key_pairs import create_key_pair, delete_key_pair, describe_key_pairs, import_key_pair
from tests.ec2.conftest import BOB
from tests.ec2.helpers import wire

needs_tools = pytest.mark.skipif(not (shutil.which("openssl") and shutil.which("ssh-keygen")),
                                 reason="openssl and ssh-keygen are needed for independent fingerprints")


def run(*args: str, data: bytes | None = None) -> bytes:
    return subprocess.run(args, input=data, capture_output=True, check=True).stdout


def colon(hex_digest: str) -> str:
    return ":".join(hex_digest[i:i + 2] for i in range(0, len(hex_digest), 2))


@needs_tools
async def test_created_rsa_fingerprint_is_sha1_of_pkcs8_der(env, tmp_path):
    out = await create_key_pair(env.ctx(), {"KeyName": "alpha"})
    wire("CreateKeyPair", out)
    assert out["KeyMaterial"].startswith("-----BEGIN RSA PRIVATE KEY-----")
    assert out["KeyPairId"].startswith("key-")
    pem = tmp_path / "alpha.pem"
    pem.write_text(out["KeyMaterial"] + "\n")
    der = run("openssl", "pkcs8", "-topk8", "-nocrypt", "-inform", "PEM", "-outform", "DER", "-in", str(pem))
    assert out["KeyFingerprint"] == colon(hashlib.sha1(der).hexdigest())
    bits = run("openssl", "rsa", "-in", str(pem), "-noout", "-text").decode()
    assert "2048 bit" in bits
    described = wire("DescribeKeyPairs", await describe_key_pairs(env.ctx(), {"KeyNames": ["alpha"],
                                                                             "IncludePublicKey": True}))
    (pair,) = described["KeyPairs"]
    assert pair["KeyFingerprint"] == out["KeyFingerprint"] and pair["KeyType"] == "rsa"
    pem.chmod(0o600)
    public = run("ssh-keygen", "-y", "-f", str(pem)).decode().split()
    assert pair["PublicKey"].split()[:2] == public[:2]


@needs_tools
async def test_ed25519_fingerprint_is_base64_sha256(env, tmp_path):
    out = await create_key_pair(env.ctx(), {"KeyName": "edge", "KeyType": "ed25519"})
    assert out["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----")
    key = tmp_path / "edge"
    key.write_text(out["KeyMaterial"] + "\n")
    key.chmod(0o600)
    printed = run("ssh-keygen", "-l", "-E", "sha256", "-f", str(key)).decode().split()[1]
    assert printed.startswith("SHA256:")
    assert out["KeyFingerprint"].rstrip("=") == printed[len("SHA256:"):]


@needs_tools
async def test_imported_rsa_fingerprint_is_md5_of_public_der(env, tmp_path):
    key = tmp_path / "mine"
    run("ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "me@host", "-f", str(key))
    public = (tmp_path / "mine.pub").read_bytes()
    out = await import_key_pair(env.ctx(), {"KeyName": "mine", "PublicKeyMaterial": public})
    wire("ImportKeyPair", out)
    pkcs8 = run("ssh-keygen", "-e", "-m", "PKCS8", "-f", str(tmp_path / "mine.pub"))
    der = run("openssl", "pkey", "-pubin", "-outform", "DER", data=pkcs8)
    assert out["KeyFingerprint"] == colon(hashlib.md5(der).hexdigest())
    # the same key in RFC 4716 and as base64 DER imports with the same fingerprint
    rfc4716 = run("ssh-keygen", "-e", "-f", str(tmp_path / "mine.pub"))
    again = await import_key_pair(env.ctx(), {"KeyName": "mine-rfc", "PublicKeyMaterial": rfc4716})
    assert again["KeyFingerprint"] == out["KeyFingerprint"]
    der_b64 = base64.b64encode(der)
    third = await import_key_pair(env.ctx(), {"KeyName": "mine-der", "PublicKeyMaterial": der_b64})
    assert third["KeyFingerprint"] == out["KeyFingerprint"]


@needs_tools
async def test_imported_ed25519(env, tmp_path):
    key = tmp_path / "ed"
    run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key))
    out = await import_key_pair(env.ctx(), {"KeyName": "ed", "PublicKeyMaterial": (tmp_path / "ed.pub").read_bytes()})
    printed = run("ssh-keygen", "-l", "-E", "sha256", "-f", str(tmp_path / "ed.pub")).decode().split()[1]
    assert out["KeyFingerprint"].rstrip("=") == printed[len("SHA256:"):]


@pytest.mark.skipif(not shutil.which("puttygen"), reason="puttygen (putty-tools) is not installed")
@pytest.mark.parametrize("key_type", ["rsa", "ed25519"])
async def test_ppk_format_loads_in_puttygen(env, tmp_path, key_type):
    out = await create_key_pair(env.ctx(), {"KeyName": f"putty-{key_type}", "KeyType": key_type, "KeyFormat": "ppk"})
    assert out["KeyMaterial"].startswith(f"PuTTY-User-Key-File-2: ssh-{key_type}")
    ppk = tmp_path / "key.ppk"
    ppk.write_text(out["KeyMaterial"])
    public = run("puttygen", str(ppk), "-O", "public-openssh").decode().split()
    (pair,) = (await describe_key_pairs(env.ctx(), {"KeyNames": [f"putty-{key_type}"],
                                                     "IncludePublicKey": True}))["KeyPairs"]
    assert pair["PublicKey"].split()[:2] == public[:2]
    if key_type == "rsa":   # the private parts are right too: puttygen rebuilds the PEM we can check
        pem = run("puttygen", str(ppk), "-O", "private-openssh", "-o", "/dev/stdout")
        assert b"PRIVATE KEY" in pem


async def test_errors_and_lifecycle(env):
    await create_key_pair(env.ctx(), {"KeyName": "one", "TagSpecifications": [
        {"ResourceType": "key-pair", "Tags": [{"Key": "team", "Value": "blue"}]}]})
    with pytest.raises(errors.InvalidKeyPairDuplicate):
        await create_key_pair(env.ctx(), {"KeyName": "one"})
    with pytest.raises(errors.InvalidKeyFormat):
        await import_key_pair(env.ctx(), {"KeyName": "bad", "PublicKeyMaterial": b"ssh-rsa notbase64 x"})
    with pytest.raises(errors.InvalidKeyPairNotFound):
        await describe_key_pairs(env.ctx(), {"KeyNames": ["two"]})
    with pytest.raises(errors.InvalidParameterValue):
        await create_key_pair(env.ctx(), {"KeyName": "x", "KeyType": "dsa"})
    with pytest.raises(errors.DryRunOperation):
        await create_key_pair(env.ctx(), {"KeyName": "dry", "DryRun": True})
    assert (await describe_key_pairs(env.ctx(BOB), {}))["KeyPairs"] == []
    await create_key_pair(env.ctx(BOB), {"KeyName": "one"})   # names are per account
    out = await describe_key_pairs(env.ctx(), {"Filters": [{"Name": "tag:team", "Values": ["blue"]}]})
    assert [k["KeyName"] for k in out["KeyPairs"]] == ["one"]
    assert out["KeyPairs"][0]["Tags"] == [{"Key": "team", "Value": "blue"}]
    fingerprint = out["KeyPairs"][0]["KeyFingerprint"]
    out = await describe_key_pairs(env.ctx(), {"Filters": [{"Name": "fingerprint", "Values": [fingerprint]}]})
    assert len(out["KeyPairs"]) == 1
    assert "PublicKey" not in out["KeyPairs"][0]
    result = await delete_key_pair(env.ctx(), {"KeyName": "one"})
    wire("DeleteKeyPair", result)
    assert result["Return"] is True
    assert (await delete_key_pair(env.ctx(), {"KeyName": "one"}))["Return"] is True   # EC2: no error
    with pytest.raises(errors.InvalidKeyPairNotFound):
        await delete_key_pair(env.ctx(), {"KeyPairId": "key-0123456789abcdef0"})
    assert (await describe_key_pairs(env.ctx(), {}))["KeyPairs"] == []
    assert len((await describe_key_pairs(env.ctx(BOB), {}))["KeyPairs"]) == 1
