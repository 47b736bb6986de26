"""Systems Manager parameters on disk: tenants' own (per account and region, every version kept up
to a limit) and the public ones under ``/aws/service/`` that name the operator's public images.

Tenant parameters: one row per version in ``ssm_parameters``; the current value is the highest
version. A write (a new version, a delete of all versions) is one transaction, so a crash leaves
either the old or the new state. Public parameters are not stored: they are read live from the
images table (public images of the ``nimbo`` alias), so a newly registered image is what
``/aws/service/nimbo/tiny/latest`` names at once. EC2's ``resolve:ssm:`` and the SSM service both
read through this module, which knows nothing of HTTP or wire formats.
"""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from storage.db import Schema

SCHEMA = Schema(
    "ssm",
    [
        """
        CREATE TABLE ssm_parameters (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            name TEXT NOT NULL,
            version INTEGER NOT NULL,
            type TEXT NOT NULL,
            value TEXT NOT NULL,
            data_type TEXT NOT NULL DEFAULT 'text',
            description TEXT,
            allowed_pattern TEXT,
            tier TEXT NOT NULL DEFAULT 'Standard',
            key_id TEXT,
            labels TEXT NOT NULL DEFAULT '[]',
            policies TEXT NOT NULL DEFAULT '[]',
            modified_us INTEGER NOT NULL,
            modified_by TEXT NOT NULL,
            PRIMARY KEY (account_id, region, name, version)
        ) WITHOUT ROWID;
        CREATE TABLE ssm_parameter_tags (
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            name TEXT NOT NULL,
            key TEXT NOT NULL,
            value TEXT NOT NULL DEFAULT '',
            PRIMARY KEY (account_id, region, name, key)
        ) WITHOUT ROWID
        """
    ],
)

MAX_VERSIONS = 100
PUBLIC_PREFIX = "/aws/service/"
IMAGE_OWNER_ALIAS = "nimbo"
# Public parameter name -> the image names it follows (newest available public image wins).
PUBLIC_IMAGE_FAMILIES = {
    "/aws/service/nimbo/tiny/latest": ("nimbo-tiny-",),
    "/aws/service/nimbo/tiny/x86_64/latest": ("nimbo-tiny-",),
    "/aws/service/debian/release/bookworm/latest/amd64": ("debian-12-amd64", "debian-bookworm"),
    "/aws/service/debian/release/12/latest/amd64": ("debian-12-amd64", "debian-bookworm"),
}
PUBLIC_IMAGES_PATH = "/aws/service/nimbo/images/"


@dataclass
class Parameter:
    name: str
    type: str
    value: str
    version: int
    modified_us: int
    data_type: str = "text"
    description: str | None = None
    allowed_pattern: str | None = None
    tier: str = "Standard"
    key_id: str | None = None
    labels: list[str] = field(default_factory=list)
    policies: list = field(default_factory=list)
    modified_by: str = ""
    public: bool = False


class ParameterExists(Exception):
    pass


class VersionLimit(Exception):
    pass


def _row(row: Any) -> Parameter:
    return Parameter(row["name"], row["type"], row["value"], row["version"], row["modified_us"],
                     row["data_type"], row["description"], row["allowed_pattern"], row["tier"], row["key_id"],
                     json.loads(row["labels"] or "[]"), json.loads(row["policies"] or "[]"), row["modified_by"])


async def versions(db: Any, account_id: str, region: str, name: str) -> list[Parameter]:
    """Every stored version of a tenant parameter, oldest first."""
    rows = await db.fetchall("SELECT * FROM ssm_parameters WHERE account_id = ? AND region = ? AND name = ?"
                             " ORDER BY version", (account_id, region, name))
    return [_row(r) for r in rows]


async def current(db: Any, account_id: str, region: str) -> list[Parameter]:
    """The latest version of each of the account's parameters in the region, by name."""
    rows = await db.fetchall(
        "SELECT p.* FROM ssm_parameters p JOIN (SELECT name, MAX(version) AS v FROM ssm_parameters"
        " WHERE account_id = ? AND region = ? GROUP BY name) m ON m.name = p.name AND m.v = p.version"
        " WHERE p.account_id = ? AND p.region = ? ORDER BY p.name", (account_id, region, account_id, region))
    return [_row(r) for r in rows]


async def put(db: Any, account_id: str, region: str, parameter: Parameter, *, overwrite: bool,
              tags: dict[str, str] | None = None) -> Parameter:
    """Store a new version (1 for a new name); fields the caller left None keep the latest
    version's values on an overwrite. Raises ParameterExists, VersionLimit."""
    async with db.transaction() as tx:
        latest = await tx.fetchone(
            "SELECT * FROM ssm_parameters WHERE account_id = ? AND region = ? AND name = ?"
            " ORDER BY version DESC LIMIT 1", (account_id, region, parameter.name))
        if latest is not None and not overwrite:
            raise ParameterExists(parameter.name)
        if latest is not None:
            old = _row(latest)
            parameter.version = old.version + 1
            for attr in ("type", "description", "allowed_pattern", "key_id", "data_type"):
                if attr == "key_id" and parameter.type != "SecureString":
                    continue        # only a SecureString names a KMS key
                if getattr(parameter, attr) is None:
                    setattr(parameter, attr, getattr(old, attr))
            count = (await tx.fetchone("SELECT COUNT(*) AS n FROM ssm_parameters WHERE account_id = ? AND"
                                       " region = ? AND name = ?", (account_id, region, parameter.name)))["n"]
            if count >= MAX_VERSIONS:
                oldest = await tx.fetchone(
                    "SELECT version, labels FROM ssm_parameters WHERE account_id = ? AND region = ? AND name = ?"
                    " ORDER BY version LIMIT 1", (account_id, region, parameter.name))
                if json.loads(oldest["labels"] or "[]"):
                    raise VersionLimit(parameter.name)
                await tx.execute("DELETE FROM ssm_parameters WHERE account_id = ? AND region = ? AND name = ?"
                                 " AND version = ?", (account_id, region, parameter.name, oldest["version"]))
        else:
            parameter.version = 1
        await tx.execute(
            "INSERT INTO ssm_parameters (account_id, region, name, version, type, value, data_type, description,"
            " allowed_pattern, tier, key_id, labels, policies, modified_us, modified_by)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, '[]', ?, ?, ?)",
            (account_id, region, parameter.name, parameter.version, parameter.type, parameter.value,
             parameter.data_type or "text", parameter.description, parameter.allowed_pattern, parameter.tier,
             parameter.key_id, json.dumps(parameter.policies), parameter.modified_us, parameter.modified_by))
        if tags:
            await tx.executemany(
                "INSERT INTO ssm_parameter_tags (account_id, region, name, key, value) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT(account_id, region, name, key) DO UPDATE SET value = excluded.value",
                [(account_id, region, parameter.name, k, v) for k, v in tags.items()])
    return parameter


async def delete(db: Any, account_id: str, region: str, names: list[str]) -> list[str]:
    """Delete every version of these parameters; returns the names that existed."""
    deleted = []
    async with db.transaction() as tx:
        for name in names:
            if await tx.execute("DELETE FROM ssm_parameters WHERE account_id = ? AND region = ? AND name = ?",
                                (account_id, region, name)):
                deleted.append(name)
                await tx.execute("DELETE FROM ssm_parameter_tags WHERE account_id = ? AND region = ? AND name = ?",
                                 (account_id, region, name))
    return deleted


async def set_labels(db: Any, account_id: str, region: str, name: str, version: int, labels: list[str]) -> bool:
    """Move ``labels`` onto ``version`` (a label names one version of a parameter)."""
    async with db.transaction() as tx:
        rows = await tx.fetchall("SELECT version, labels FROM ssm_parameters WHERE account_id = ? AND region = ?"
                                 " AND name = ?", (account_id, region, name))
        if not any(r["version"] == version for r in rows):
            return False
        for row in rows:
            have = json.loads(row["labels"] or "[]")
            new = [l for l in have if l not in labels] + ([l for l in labels if l not in have]
                                                          if row["version"] == version else [])
            if new != have:
                await tx.execute("UPDATE ssm_parameters SET labels = ? WHERE account_id = ? AND region = ?"
                                 " AND name = ? AND version = ?",
                                 (json.dumps(new), account_id, region, name, row["version"]))
    return True


async def set_tags(db: Any, account_id: str, region: str, name: str, tags: dict[str, str]) -> None:
    async with db.transaction() as tx:
        await tx.executemany(
            "INSERT INTO ssm_parameter_tags (account_id, region, name, key, value) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT(account_id, region, name, key) DO UPDATE SET value = excluded.value",
            [(account_id, region, name, k, v) for k, v in tags.items()])


async def remove_tags(db: Any, account_id: str, region: str, name: str, keys: list[str]) -> None:
    async with db.transaction() as tx:
        await tx.executemany("DELETE FROM ssm_parameter_tags WHERE account_id = ? AND region = ? AND name = ?"
                             " AND key = ?", [(account_id, region, name, k) for k in keys])


async def tags_of(db: Any, account_id: str, region: str, name: str) -> dict[str, str]:
    rows = await db.fetchall("SELECT key, value FROM ssm_parameter_tags WHERE account_id = ? AND region = ?"
                             " AND name = ?", (account_id, region, name))
    return {r["key"]: r["value"] for r in rows}


# -- public parameters ------------------------------------------------------------------------------

async def public_parameters(db: Any, region: str) -> dict[str, Parameter]:
    """``/aws/service/...`` -> the public image it names now, read live from the images table."""
    try:
        rows = await db.fetchall(
            "SELECT image_id, name, created_us FROM ec2_images WHERE region = ? AND is_public = 1"
            " AND owner_alias = ? AND state = 'available' AND image_type = 'machine' ORDER BY created_us, image_id",
            (region, IMAGE_OWNER_ALIAS))
    except sqlite3.OperationalError:     # EC2's tables are not there (an endpoint without EC2)
        return {}
    found: dict[str, Parameter] = {}
    for row in rows:
        found[PUBLIC_IMAGES_PATH + row["name"]] = _public(PUBLIC_IMAGES_PATH + row["name"], row, 1)
        for name, prefixes in PUBLIC_IMAGE_FAMILIES.items():
            if row["name"].startswith(prefixes):
                previous = found.get(name)
                found[name] = _public(name, row, previous.version + 1 if previous else 1)
    return found


def _public(name: str, row: Any, version: int) -> Parameter:
    return Parameter(name, "String", row["image_id"], version, row["created_us"], "aws:ec2:image",
                     tier="Standard", public=True)


async def lookup(db: Any, account_id: str, region: str, name: str) -> list[Parameter]:
    """The versions of a parameter the account can read (public or its own), oldest first."""
    if name.startswith(PUBLIC_PREFIX):
        found = (await public_parameters(db, region)).get(name)
        return [found] if found else []
    return await versions(db, account_id, region, name)


def select(found: list[Parameter], selector: str | None) -> Parameter | None:
    """The version a ``name:selector`` names: a version number, a label, or the latest."""
    if not found:
        return None
    if selector is None:
        return found[-1]
    if selector.isdigit():
        return next((p for p in found if p.version == int(selector)), None)
    return next((p for p in found if selector in p.labels), None)


async def resolve(db: Any, account_id: str, region: str, reference: str) -> Parameter | None:
    """The parameter version that ``resolve:ssm:<name>[:<version or label>]`` names, or None."""
    text = reference[len("resolve:ssm:"):]
    name, _, selector = text.partition(":")
    return select(await lookup(db, account_id, region, name), selector or None)
