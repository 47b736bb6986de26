"""Key pairs: CreateKeyPair (rsa 2048 or ed25519, pem or ppk), ImportKeyPair, DescribeKeyPairs,
DeleteKeyPair. The private key is returned once and never stored.

Fingerprints as EC2 computes them: an RSA key EC2 created -> SHA-1 of the DER PKCS#8 private key;
an imported RSA key -> MD5 of the DER public key (SubjectPublicKeyInfo); ed25519 -> base64 SHA-256
of the OpenSSH public key blob. Hex digests are written as colon-separated pairs.
"""
from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import sqlite3
import struct
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from ec2_api import ids, tag_store
from ec2_api.common import account_of, from_us, now_us
from ec2_api.errors import (InvalidKeyFormat, InvalidKeyPairDuplicate, InvalidKeyPairNotFound,
                            InvalidParameterValue, MissingParameter, check_dry_run)
from ec2_api.filters import apply_filters

_NAME_RE = re.compile(r"^[\x20-\x7e]{1,255}$")


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


def ssh_string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def ssh_mpint(value: int) -> bytes:
    if value == 0:
        return ssh_string(b"")
    raw = value.to_bytes((value.bit_length() + 8) // 8, "big")   # keeps a leading 0 for the sign
    return ssh_string(raw)


def public_blob(public_key: Any) -> bytes:
    line = public_key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    return base64.b64decode(line.split()[1])


def openssh_public_line(public_key: Any, comment: str) -> str:
    line = public_key.public_bytes(serialization.Encoding.OpenSSH,
                                   serialization.PublicFormat.OpenSSH).decode()
    return f"{line} {comment}".strip()


def sha256_fingerprint(public_key: Any) -> str:
    return base64.b64encode(hashlib.sha256(public_blob(public_key)).digest()).decode()


def created_rsa_fingerprint(private_key: rsa.RSAPrivateKey) -> str:
    der = private_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    return colon_hex(hashlib.sha1(der).digest())


def imported_rsa_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    return colon_hex(hashlib.md5(der).digest())


def ppk_v2(private_key: Any, comment: str) -> str:
    """The key in PuTTY's PPK version 2 format, unencrypted."""
    if isinstance(private_key, rsa.RSAPrivateKey):
        algorithm = "ssh-rsa"
        numbers = private_key.private_numbers()
        private = (ssh_mpint(numbers.d) + ssh_mpint(numbers.p) + ssh_mpint(numbers.q)
                   + ssh_mpint(numbers.iqmp))
    else:
        algorithm = "ssh-ed25519"
        seed = private_key.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw,
                                         serialization.NoEncryption())
        private = ssh_string(seed)
    public = public_blob(private_key.public_key())
    encryption = "none"
    mac_key = hashlib.sha1(b"putty-private-key-file-mac-key").digest()
    mac_data = (ssh_string(algorithm.encode()) + ssh_string(encryption.encode())
                + ssh_string(comment.encode()) + ssh_string(public) + ssh_string(private))
    mac = hmac.new(mac_key, mac_data, hashlib.sha1).hexdigest()

    def lines(blob: bytes) -> list[str]:
        text = base64.b64encode(blob).decode()
        return [text[i:i + 64] for i in range(0, len(text), 64)]

    pub_lines, priv_lines = lines(public), lines(private)
    out = [f"PuTTY-User-Key-File-2: {algorithm}", f"Encryption: {encryption}", f"Comment: {comment}",
           f"Public-Lines: {len(pub_lines)}", *pub_lines, f"Private-Lines: {len(priv_lines)}",
           *priv_lines, f"Private-MAC: {mac}"]
    return "\n".join(out) + "\n"


def generate_key(key_type: str, key_format: str, name: str) -> tuple[str, str, str]:
    """(private key material, fingerprint, OpenSSH public key line) of a new key."""
    if key_type == "ed25519":
        private_key: Any = ed25519.Ed25519PrivateKey.generate()
        fingerprint = sha256_fingerprint(private_key.public_key())
        pem_format = serialization.PrivateFormat.OpenSSH
    else:
        private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        fingerprint = created_rsa_fingerprint(private_key)
        pem_format = serialization.PrivateFormat.TraditionalOpenSSL
    if key_format == "ppk":
        material = ppk_v2(private_key, name)
    else:
        material = private_key.private_bytes(serialization.Encoding.PEM, pem_format,
                                             serialization.NoEncryption()).decode().strip()
    return material, fingerprint, openssh_public_line(private_key.public_key(), name)


def parse_public_key(material: bytes) -> Any:
    """A public key from the formats ImportKeyPair takes: OpenSSH, RFC 4716 (SSH2), PEM or
    base64 DER SubjectPublicKeyInfo. Only RSA and ed25519 keys are accepted."""
    text = material.decode("ascii", errors="replace").strip()
    loaders = []
    if text.startswith("---- BEGIN SSH2 PUBLIC KEY ----"):
        body = _rfc4716_body(text)
        loaders.append(lambda: _load_blob(body))
    elif text.startswith("-----BEGIN"):
        loaders.append(lambda: serialization.load_pem_public_key(text.encode()))
    elif text.startswith(("ssh-", "ecdsa-")):
        loaders.append(lambda: serialization.load_ssh_public_key(" ".join(text.split()[:2]).encode()))
    else:
        loaders.append(lambda: serialization.load_der_public_key(base64.b64decode(text, validate=False)))
        loaders.append(lambda: serialization.load_der_public_key(material))
    for load in loaders:
        try:
            key = load()
        except (ValueError, TypeError, UnsupportedAlgorithm, binascii.Error, IndexError):
            continue
        if isinstance(key, rsa.RSAPublicKey):
            if key.key_size < 1024 or key.key_size > 16384:
                raise InvalidKeyFormat("Invalid RSA key length: use 1024 to 16384 bits")
            return key
        if isinstance(key, ed25519.Ed25519PublicKey):
            return key
        raise InvalidKeyFormat("Key is not in valid OpenSSH public key format: only rsa and ed25519 "
                               "keys are supported")
    raise InvalidKeyFormat("Key is not in valid OpenSSH public key format")


def _rfc4716_body(text: str) -> bytes:
    lines = [line.strip() for line in text.splitlines()[1:]]
    body: list[str] = []
    continued = False
    for line in lines:
        if line.startswith("---- END SSH2 PUBLIC KEY ----"):
            break
        if continued or ":" in line:
            continued = line.endswith("\\")
            continue
        body.append(line)
    return base64.b64decode("".join(body))


def _load_blob(blob: bytes) -> Any:
    (length,) = struct.unpack(">I", blob[:4])
    algorithm = blob[4:4 + length].decode()
    return serialization.load_ssh_public_key(f"{algorithm} {base64.b64encode(blob).decode()}".encode())


def _key_name(params: dict) -> str:
    name = params.get("KeyName")
    if not name:
        raise MissingParameter("The request must contain the parameter KeyName")
    if not _NAME_RE.match(name):
        raise InvalidParameterValue(f"Value ({name}) for parameter keyName is invalid. "
                                    "Key names are 1-255 ASCII characters.")
    return name


async def _insert(ctx: Any, name: str, key_type: str, fingerprint: str, public_line: str,
                  tags: dict[str, str]) -> str:
    account = account_of(ctx)
    key_pair_id = ids.new_id("key")
    try:
        async with ctx.app.db.transaction() as tx:
            await tx.execute(
                "INSERT INTO ec2_key_pairs (key_pair_id, account_id, region, key_name, key_type,"
                " fingerprint, public_key, created_us) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (key_pair_id, account, ctx.region, name, key_type, fingerprint, public_line, now_us(ctx)))
            await tag_store.write_tags(tx, account, ctx.region, key_pair_id, "key-pair", tags)
    except sqlite3.IntegrityError as exc:
        raise InvalidKeyPairDuplicate(f"The keypair '{name}' already exists.") from exc
    return key_pair_id


async def _exists(ctx: Any, name: str) -> bool:
    return await ctx.app.db.fetchone(
        "SELECT 1 FROM ec2_key_pairs WHERE account_id = ? AND region = ? AND key_name = ?",
        (account_of(ctx), ctx.region, name)) is not None


async def create_key_pair(ctx: Any, params: dict) -> dict:
    name = _key_name(params)
    key_type = params.get("KeyType") or "rsa"
    key_format = params.get("KeyFormat") or "pem"
    if key_type not in ("rsa", "ed25519"):
        raise InvalidParameterValue(f"Value ({key_type}) for parameter keyType is invalid.")
    if key_format not in ("pem", "ppk"):
        raise InvalidParameterValue(f"Value ({key_format}) for parameter keyFormat is invalid.")
    tags = tag_store.tag_specifications(params, {"key-pair"}).get("key-pair", {})
    check_dry_run(params)
    if await _exists(ctx, name):
        raise InvalidKeyPairDuplicate(f"The keypair '{name}' already exists.")
    material, fingerprint, public_line = await asyncio.to_thread(generate_key, key_type, key_format, name)
    key_pair_id = await _insert(ctx, name, key_type, fingerprint, public_line, tags)
    return {"KeyName": name, "KeyFingerprint": fingerprint, "KeyMaterial": material,
            "KeyPairId": key_pair_id, "Tags": tag_store.tag_list(tags) or None}


async def import_key_pair(ctx: Any, params: dict) -> dict:
    name = _key_name(params)
    material = params.get("PublicKeyMaterial")
    if not material:
        raise MissingParameter("The request must contain the parameter PublicKeyMaterial")
    if isinstance(material, str):
        material = material.encode()
    key = parse_public_key(material)
    tags = tag_store.tag_specifications(params, {"key-pair"}).get("key-pair", {})
    check_dry_run(params)
    if isinstance(key, rsa.RSAPublicKey):
        key_type, fingerprint = "rsa", imported_rsa_fingerprint(key)
    else:
        key_type, fingerprint = "ed25519", sha256_fingerprint(key)
    key_pair_id = await _insert(ctx, name, key_type, fingerprint, openssh_public_line(key, name), tags)
    return {"KeyName": name, "KeyFingerprint": fingerprint, "KeyPairId": key_pair_id,
            "Tags": tag_store.tag_list(tags) or None}


async def describe_key_pairs(ctx: Any, params: dict) -> dict:
    check_dry_run(params)
    account = account_of(ctx)
    rows = await ctx.app.db.fetchall(
        "SELECT * FROM ec2_key_pairs WHERE account_id = ? AND region = ? ORDER BY key_name",
        (account, ctx.region))
    names = params.get("KeyNames") or []
    pair_ids = params.get("KeyPairIds") or []
    for name in names:
        if not any(row["key_name"] == name for row in rows):
            raise InvalidKeyPairNotFound(f"The key pair '{name}' does not exist")
    for key_pair_id in pair_ids:
        if not any(row["key_pair_id"] == key_pair_id for row in rows):
            raise InvalidKeyPairNotFound(f"The key pair '{key_pair_id}' does not exist")
    if names or pair_ids:
        rows = [row for row in rows if row["key_name"] in names or row["key_pair_id"] in pair_ids]
    tags = await tag_store.tags_of(ctx.app.db, account, [row["key_pair_id"] for row in rows])
    items = []
    for row in rows:
        item = {"KeyPairId": row["key_pair_id"], "KeyName": row["key_name"], "KeyType": row["key_type"],
                "KeyFingerprint": row["fingerprint"], "CreateTime": from_us(row["created_us"]),
                "Tags": tag_store.tag_list(tags[row["key_pair_id"]])}
        if params.get("IncludePublicKey"):
            item["PublicKey"] = row["public_key"]
        items.append(item)
    items = apply_filters(items, params.get("Filters"), {
        "key-pair-id": lambda k: k["KeyPairId"],
        "key-name": lambda k: k["KeyName"],
        "fingerprint": lambda k: k["KeyFingerprint"],
        "key-type": lambda k: k["KeyType"],
    }, tags=lambda k: tags[k["KeyPairId"]])
    return {"KeyPairs": items}


async def delete_key_pair(ctx: Any, params: dict) -> dict:
    name, key_pair_id = params.get("KeyName"), params.get("KeyPairId")
    if not name and not key_pair_id:
        raise MissingParameter("The request must contain the parameter KeyName or KeyPairId")
    if key_pair_id and not ids.is_valid(key_pair_id, "key"):
        raise ids.InvalidKeyPairIDMalformed(f'Invalid id: "{key_pair_id}" (expecting "key-...")')
    check_dry_run(params)
    account = account_of(ctx)
    if key_pair_id:
        row = await ctx.app.db.fetchone(
            "SELECT * FROM ec2_key_pairs WHERE account_id = ? AND region = ? AND key_pair_id = ?",
            (account, ctx.region, key_pair_id))
        if row is None:
            raise InvalidKeyPairNotFound(f"The key pair '{key_pair_id}' does not exist")
    else:
        row = await ctx.app.db.fetchone(
            "SELECT * FROM ec2_key_pairs WHERE account_id = ? AND region = ? AND key_name = ?",
            (account, ctx.region, name))
    if row is None:
        return {"Return": True}   # EC2 answers success for a key name that does not exist
    async with ctx.app.db.transaction() as tx:
        await tx.execute("DELETE FROM ec2_key_pairs WHERE key_pair_id = ?", (row["key_pair_id"],))
        await tag_store.delete_all_tags(tx, row["key_pair_id"])
    return {"Return": True, "KeyPairId": row["key_pair_id"]}


async def public_key_of(db: Any, account_id: str, region: str, name: str) -> Any | None:
    """The key pair row a launch names, or None."""
    return await db.fetchone(
        "SELECT * FROM ec2_key_pairs WHERE account_id = ? AND region = ? AND key_name = ?",
        (account_id, region, name))
