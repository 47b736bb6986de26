"""Launch templates: Create/Delete/DescribeLaunchTemplates, Create/Delete/DescribeLaunchTemplate-
Versions, ModifyLaunchTemplate, GetLaunchTemplateData, and RunInstances' LaunchTemplate parameter.

A template has numbered versions (1, 2, ... never reused), a default version and a latest one;
``$Latest`` and ``$Default`` name them wherever a version is asked for. A version stores the
request's LaunchTemplateData as sent (member names of ``RequestLaunchTemplateData``) and is shown
through ``ResponseLaunchTemplateData``'s members. As EC2 does, a template may hold values that would
not launch (an AMI that does not exist): they are stored, and answered with a ValidationWarning.

RunInstances (``launch_parameters``): the version's data fills every parameter the call does not
give itself (the call wins, parameter by parameter; TagSpecifications merge per resource type, the
call's tags winning per key), an ``ImageId`` of ``resolve:ssm:<parameter>`` becomes the AMI it
names (the parameter must have the aws:ec2:image data type, else SsmInvalidParameter, also when a
template is created), and the merged request goes through RunInstances' normal validation. The instance gets the
``aws:ec2launchtemplate:id`` and ``aws:ec2launchtemplate:version`` tags.

Crash story: each call is one transaction on two tables of this module's own schema.
"""
from __future__ import annotations

import json
import re
import sqlite3
from functools import lru_cache
from typing import Any

from ec2_api import ids, instance_store, tag_store
from ec2_api.common import account_of, from_us, now_us
from ec2_api.errors import (EC2Error, InvalidParameterCombination, InvalidParameterValue, MissingParameter,
                            check_dry_run, ec2_error)
from ec2_api.filters import apply_filters, paginate
from ec2_api.tags import Taggable, register_taggable
from storage import parameters
from storage.db import Schema

SCHEMA = Schema(
    "ec2_launch_templates",
    [
        """
        CREATE TABLE ec2_launch_templates (
            template_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL,
            region TEXT NOT NULL,
            name TEXT NOT NULL,
            default_version INTEGER NOT NULL,
            next_version INTEGER NOT NULL,
            created_us INTEGER NOT NULL,
            client_token TEXT,
            UNIQUE (account_id, region, name)
        );
        CREATE TABLE ec2_launch_template_versions (
            template_id TEXT NOT NULL,
            version INTEGER NOT NULL,
            description TEXT,
            data TEXT NOT NULL,
            created_us INTEGER NOT NULL,
            client_token TEXT,
            PRIMARY KEY (template_id, version)
        )
        """
    ],
)

InvalidNameMalformed = ec2_error("InvalidLaunchTemplateName.MalformedException")
InvalidNameAlreadyExists = ec2_error("InvalidLaunchTemplateName.AlreadyExistsException",
                                     message="Launch template name already in use.")
InvalidNameNotFound = ec2_error("InvalidLaunchTemplateName.NotFoundException")
InvalidIdMalformed = ec2_error("InvalidLaunchTemplateId.Malformed")
InvalidIdNotFound = ec2_error("InvalidLaunchTemplateId.NotFound")
InvalidVersionNotFound = ec2_error("InvalidLaunchTemplateId.VersionNotFound")
InvalidUserDataMalformed = ec2_error("InvalidUserData.Malformed", message="Invalid BASE64 encoding of user data.")
VersionLimitExceeded = ec2_error("VersionLimitExceeded")
SsmInvalidParameter = ec2_error("SsmInvalidParameter")

register_taggable("lt", Taggable("launch-template", "ec2_launch_templates", "template_id", InvalidIdNotFound,
                                 "launch template ID"))

_NAME = re.compile(r"^[a-zA-Z0-9().\-/_]{3,128}$")
MAX_VERSIONS = 10000
TEMPLATE_TAG_TYPES = {"instance", "volume", "network-interface", "spot-instances-request", "elastic-gpu"}
# RequestLaunchTemplateData member -> RunInstances member, where the names differ.
_RUN_NAMES = {"RamDiskId": "RamdiskId", "ElasticGpuSpecifications": "ElasticGpuSpecification"}
_NOT_FOR_RUN = {"InstanceRequirements", "TagSpecifications"}
_RUN_TAG_TYPES = {"instance", "volume", "network-interface"}


_service_model: Any = None


def use_models(service_model: Any) -> None:
    """Where EC2's model comes from: the gateway's loader (``gateway.registry``: one copy of the
    model per process, the one the codec serves with); botocore's own when none is given."""
    global _service_model
    if service_model is _service_model:
        return
    _service_model = service_model
    _model.cache_clear()


@lru_cache(maxsize=1)
def _model() -> Any:
    if _service_model is not None:
        return _service_model("ec2")
    import botocore.session  # noqa: PLC0415 (the shapes that tell request data from response data)
    return botocore.session.get_session().get_service_model("ec2")


def _fit(shape: Any, value: Any) -> Any:
    """``value`` reduced to what ``shape`` has (members of the same name), for the response."""
    if value is None:
        return None
    kind = shape.type_name
    if kind == "structure":
        if not isinstance(value, dict):
            return None
        out = {k: _fit(shape.members[k], v) for k, v in value.items() if k in shape.members}
        return {k: v for k, v in out.items() if v is not None}
    if kind == "list":
        return [x for x in (_fit(shape.member, v) for v in value) if x is not None] if isinstance(value, list) else None
    return value


def response_data(data: dict) -> dict:
    return _fit(_model().shape_for("ResponseLaunchTemplateData"), data) or {}


def _creator(account: str) -> str:
    return f"arn:aws:iam::{account}:root"


# -- validation -----------------------------------------------------------------------------------

def check_name(name: str | None) -> str:
    if not name:
        raise MissingParameter("The request must contain the parameter launchTemplateName")
    if not _NAME.match(name):
        raise InvalidNameMalformed(
            "A launch template name must be between 3 and 128 characters, and may contain letters, numbers, "
            "and the following characters: - ( ) . / _.'")
    return name


async def validate_data(ctx: Any, data: dict | None) -> list[dict]:
    """Refuse data EC2 refuses; return the ValidationWarning errors of values that would not launch."""
    from ec2_api import instance_types, instances, key_pairs  # noqa: PLC0415 (RunInstances' own checks)
    if data is None:
        raise MissingParameter("The request must contain the parameter launchTemplateData")
    if data.get("UserData"):
        try:
            instances.decode_user_data(data["UserData"])
        except EC2Error as exc:
            raise InvalidUserDataMalformed(exc.message) from exc
    if data.get("MetadataOptions"):
        options = {k: v for k, v in data["MetadataOptions"].items() if k != "HttpProtocolIpv4"}
        instances.metadata_options(options)
    behaviour = data.get("InstanceInitiatedShutdownBehavior")
    if behaviour is not None and behaviour not in ("stop", "terminate"):
        raise InvalidParameterValue(f"Value ({behaviour}) for parameter instanceInitiatedShutdownBehavior is invalid.")
    for spec in data.get("TagSpecifications") or []:
        if spec.get("ResourceType") not in TEMPLATE_TAG_TYPES:
            raise InvalidParameterValue(f"'{spec.get('ResourceType')}' is not a valid taggable resource type "
                                        f"for a launch template.")
        tag_store.validate_tags(spec.get("Tags") or [])
    warnings: list[dict] = []
    image_id = data.get("ImageId")
    if isinstance(image_id, str) and image_id.startswith("resolve:ssm:"):
        await resolve_image_id(ctx, image_id)
    elif image_id:
        try:
            from ec2_api import images  # noqa: PLC0415
            await images.image_for_launch(ctx, image_id)
        except EC2Error as exc:
            warnings.append({"Code": exc.code, "Message": exc.message})
    if data.get("InstanceType"):
        try:
            instance_types.lookup(ctx.app.config, data["InstanceType"])
        except EC2Error as exc:
            warnings.append({"Code": "InvalidInstanceType", "Message": exc.message})
    if data.get("KeyName") and await key_pairs.public_key_of(ctx.app.db, account_of(ctx), ctx.region,
                                                               data["KeyName"]) is None:
        warnings.append({"Code": "InvalidKeyPair.NotFound",
                         "Message": f"The key pair '{data['KeyName']}' does not exist"})
    return warnings


# -- lookups ----------------------------------------------------------------------------------------

async def find_template(ctx: Any, template_id: str | None, name: str | None) -> Any:
    if template_id and name:
        raise InvalidParameterCombination("Specify either the launch template ID or the launch template name, "
                                          "not both.")
    if not template_id and not name:
        raise MissingParameter("The request must contain the parameter launchTemplateName or launchTemplateId")
    db = ctx.app.db
    if template_id:
        if not ids.is_valid(template_id, "lt"):
            raise InvalidIdMalformed(f"The specified launch template ID '{template_id}' is not valid. "
                                     f"A launch template ID must be in the form lt-xxxxxxxxxxxxxxxxx.")
        row = await db.fetchone("SELECT * FROM ec2_launch_templates WHERE template_id = ? AND account_id = ?"
                                " AND region = ?", (template_id, account_of(ctx), ctx.region))
        if row is None:
            raise InvalidIdNotFound(f"The specified launch template, with template ID {template_id}, does not exist.")
        return row
    row = await db.fetchone("SELECT * FROM ec2_launch_templates WHERE name = ? AND account_id = ? AND region = ?",
                            (name, account_of(ctx), ctx.region))
    if row is None:
        raise InvalidNameNotFound(f"The specified launch template, with template name {name}, does not exist.")
    return row


async def _version_numbers(db: Any, template_id: str) -> list[int]:
    rows = await db.fetchall("SELECT version FROM ec2_launch_template_versions WHERE template_id = ?"
                             " ORDER BY version", (template_id,))
    return [r["version"] for r in rows]


def _latest(numbers: list[int]) -> int:
    return numbers[-1] if numbers else 0


def version_number(template: Any, numbers: list[int], spec: str | int | None) -> int:
    """The version that ``$Latest``, ``$Default``, a number (or nothing: the default) names."""
    text = "$Default" if spec in (None, "") else str(spec)
    if text == "$Latest":
        return _latest(numbers)
    if text == "$Default":
        return template["default_version"]
    if not text.isdigit() or int(text) < 1:
        raise InvalidParameterValue(f"The launch template version '{text}' is not valid: use a version number, "
                                    f"$Latest or $Default.")
    if int(text) not in numbers:
        raise InvalidVersionNotFound(f"Could not find launch template version {text} for launch template "
                                     f"ID {template['template_id']}.")
    return int(text)


async def _version_row(db: Any, template_id: str, version: int) -> Any:
    return await db.fetchone("SELECT * FROM ec2_launch_template_versions WHERE template_id = ? AND version = ?",
                             (template_id, version))


# -- rendering --------------------------------------------------------------------------------------

async def template_item(db: Any, row: Any, tags: dict[str, str] | None = None) -> dict:
    if tags is None:
        tags = (await tag_store.tags_of(db, row["account_id"], [row["template_id"]]))[row["template_id"]]
    item = {"LaunchTemplateId": row["template_id"], "LaunchTemplateName": row["name"],
            "CreateTime": from_us(row["created_us"]), "CreatedBy": _creator(row["account_id"]),
            "DefaultVersionNumber": row["default_version"],
            "LatestVersionNumber": _latest(await _version_numbers(db, row["template_id"])),
            "Tags": tag_store.tag_list(tags) or None}
    return {k: v for k, v in item.items() if v is not None}


async def version_item(ctx: Any, template: Any, row: Any, resolve_alias: bool = False) -> dict:
    data = response_data(json.loads(row["data"]))
    if resolve_alias and str(data.get("ImageId", "")).startswith("resolve:ssm:"):
        found = await parameters.resolve(ctx.app.db, account_of(ctx), ctx.region, data["ImageId"])
        if found is not None:
            data["ImageId"] = found.value
    item = {"LaunchTemplateId": template["template_id"], "LaunchTemplateName": template["name"],
            "VersionNumber": row["version"], "VersionDescription": row["description"],
            "CreateTime": from_us(row["created_us"]), "CreatedBy": _creator(template["account_id"]),
            "DefaultVersion": row["version"] == template["default_version"], "LaunchTemplateData": data}
    return {k: v for k, v in item.items() if v is not None}


def _warning(errors: list[dict]) -> dict | None:
    return {"Errors": errors} if errors else None


# -- CreateLaunchTemplate / CreateLaunchTemplateVersion ------------------------------------------------

async def create_launch_template(ctx: Any, params: dict) -> dict:
    name = check_name(params.get("LaunchTemplateName"))
    description = params.get("VersionDescription")
    if description is not None and len(description) > 255:
        raise InvalidParameterValue("The version description must be at most 255 characters")
    data = params.get("LaunchTemplateData")
    warnings = await validate_data(ctx, data)
    tags = tag_store.tag_specifications(params, {"launch-template"}).get("launch-template", {})
    db, account = ctx.app.db, account_of(ctx)
    token = params.get("ClientToken")
    if token:
        row = await db.fetchone("SELECT * FROM ec2_launch_templates WHERE account_id = ? AND region = ?"
                                " AND client_token = ?", (account, ctx.region, token))
        if row is not None:
            return {"LaunchTemplate": await template_item(db, row)}
    check_dry_run(params)
    template_id = ids.new_id("lt")
    at = now_us(ctx)
    try:
        async with db.transaction() as tx:
            await tx.execute(
                "INSERT INTO ec2_launch_templates (template_id, account_id, region, name, default_version,"
                " next_version, created_us, client_token) VALUES (?, ?, ?, ?, 1, 2, ?, ?)",
                (template_id, account, ctx.region, name, at, token))
            await tx.execute(
                "INSERT INTO ec2_launch_template_versions (template_id, version, description, data, created_us)"
                " VALUES (?, 1, ?, ?, ?)", (template_id, description, json.dumps(data, sort_keys=True), at))
            await tag_store.write_tags(tx, account, ctx.region, template_id, "launch-template", tags)
    except sqlite3.IntegrityError as exc:
        raise InvalidNameAlreadyExists() from exc
    row = await db.fetchone("SELECT * FROM ec2_launch_templates WHERE template_id = ?", (template_id,))
    out = {"LaunchTemplate": await template_item(db, row, tags)}
    if warnings:
        out["Warning"] = _warning(warnings)
    return out


def _merge_data(base: dict, override: dict) -> dict:
    """A new version's data from its source version: the request's parameters replace the source's."""
    merged = dict(base)
    merged.update(override)
    return merged


async def create_launch_template_version(ctx: Any, params: dict) -> dict:
    template = await find_template(ctx, params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))
    description = params.get("VersionDescription")
    if description is not None and len(description) > 255:
        raise InvalidParameterValue("The version description must be at most 255 characters")
    data = params.get("LaunchTemplateData")
    if data is None:
        raise MissingParameter("The request must contain the parameter launchTemplateData")
    db = ctx.app.db
    numbers = await _version_numbers(db, template["template_id"])
    if params.get("SourceVersion") is not None:
        source = version_number(template, numbers, params["SourceVersion"])
        data = _merge_data(json.loads((await _version_row(db, template["template_id"], source))["data"]), data)
    warnings = await validate_data(ctx, data)
    token = params.get("ClientToken")
    if token:
        row = await db.fetchone("SELECT * FROM ec2_launch_template_versions WHERE template_id = ?"
                                " AND client_token = ?", (template["template_id"], token))
        if row is not None:
            return {"LaunchTemplateVersion": await version_item(ctx, template, row)}
    if len(numbers) >= MAX_VERSIONS:
        raise VersionLimitExceeded(f"A launch template can have at most {MAX_VERSIONS} versions.")
    check_dry_run(params)
    async with db.transaction() as tx:
        current = await tx.fetchone("SELECT next_version FROM ec2_launch_templates WHERE template_id = ?",
                                    (template["template_id"],))
        if current is None:
            raise InvalidIdNotFound(f"The specified launch template, with template ID {template['template_id']}, "
                                    f"does not exist.")
        version = current["next_version"]
        await tx.execute("UPDATE ec2_launch_templates SET next_version = ? WHERE template_id = ?",
                         (version + 1, template["template_id"]))
        await tx.execute(
            "INSERT INTO ec2_launch_template_versions (template_id, version, description, data, created_us,"
            " client_token) VALUES (?, ?, ?, ?, ?, ?)",
            (template["template_id"], version, description, json.dumps(data, sort_keys=True), now_us(ctx), token))
    row = await _version_row(db, template["template_id"], version)
    out = {"LaunchTemplateVersion": await version_item(ctx, template, row, bool(params.get("ResolveAlias")))}
    if warnings:
        out["Warning"] = _warning(warnings)
    return out


# -- ModifyLaunchTemplate / DeleteLaunchTemplate(Versions) ----------------------------------------------

async def modify_launch_template(ctx: Any, params: dict) -> dict:
    template = await find_template(ctx, params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))
    db = ctx.app.db
    default = params.get("DefaultVersion")
    if default is not None:
        numbers = await _version_numbers(db, template["template_id"])
        if not str(default).isdigit():
            raise InvalidParameterValue(f"The default version '{default}' must be a version number.")
        version = version_number(template, numbers, default)
        check_dry_run(params)
        async with db.transaction() as tx:
            await tx.execute("UPDATE ec2_launch_templates SET default_version = ? WHERE template_id = ?",
                             (version, template["template_id"]))
    else:
        check_dry_run(params)
    row = await db.fetchone("SELECT * FROM ec2_launch_templates WHERE template_id = ?", (template["template_id"],))
    return {"LaunchTemplate": await template_item(db, row)}


async def delete_launch_template(ctx: Any, params: dict) -> dict:
    template = await find_template(ctx, params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))
    check_dry_run(params)
    db = ctx.app.db
    item = await template_item(db, template)
    item.pop("Tags", None)
    async with db.transaction() as tx:
        await tx.execute("DELETE FROM ec2_launch_template_versions WHERE template_id = ?", (template["template_id"],))
        await tx.execute("DELETE FROM ec2_launch_templates WHERE template_id = ?", (template["template_id"],))
        await tag_store.delete_all_tags(tx, template["template_id"])
    return {"LaunchTemplate": item}


async def delete_launch_template_versions(ctx: Any, params: dict) -> dict:
    template = await find_template(ctx, params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))
    wanted = params.get("Versions") or []
    if not wanted:
        raise MissingParameter("The request must contain the parameter launchTemplateVersion")
    if len(wanted) > 200:
        raise InvalidParameterValue("You can delete up to 200 launch template versions in one request.")
    check_dry_run(params)
    db, tid = ctx.app.db, template["template_id"]
    numbers = set(await _version_numbers(db, tid))
    done, failed = [], []
    base = {"LaunchTemplateId": tid, "LaunchTemplateName": template["name"]}
    async with db.transaction() as tx:
        for spec in wanted:
            text = str(spec)
            number = int(text) if text.isdigit() else None
            if number is None or number not in numbers:
                failed.append({**base, **({"VersionNumber": number} if number is not None else {}),
                               "ResponseError": {"Code": "launchTemplateVersionDoesNotExist",
                                                 "Message": f"The specified launch template version "
                                                            f"'{text}' does not exist."}})
            elif number == template["default_version"]:
                failed.append({**base, "VersionNumber": number,
                               "ResponseError": {"Code": "unexpectedError",
                                                 "Message": "Cannot delete the default version of a launch "
                                                            "template. Delete the launch template instead."}})
            else:
                await tx.execute("DELETE FROM ec2_launch_template_versions WHERE template_id = ? AND version = ?",
                                 (tid, number))
                numbers.discard(number)
                done.append({**base, "VersionNumber": number})
    return {"SuccessfullyDeletedLaunchTemplateVersions": done, "UnsuccessfullyDeletedLaunchTemplateVersions": failed}


# -- Describe ---------------------------------------------------------------------------------------

_TEMPLATE_FILTERS = {
    "create-time": lambda t: t["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "launch-template-name": lambda t: t["LaunchTemplateName"],
    "launch-template-id": lambda t: t["LaunchTemplateId"],
}


async def describe_launch_templates(ctx: Any, params: dict) -> dict:
    max_results = params.get("MaxResults")
    ids_wanted = params.get("LaunchTemplateIds") or []
    names_wanted = params.get("LaunchTemplateNames") or []
    for template_id in ids_wanted:
        if not ids.is_valid(template_id, "lt"):
            raise InvalidIdMalformed(f"The specified launch template ID '{template_id}' is not valid.")
    for name in names_wanted:
        check_name(name)
    check_dry_run(params)
    db, account = ctx.app.db, account_of(ctx)
    rows = await db.fetchall("SELECT * FROM ec2_launch_templates WHERE account_id = ? AND region = ?",
                             (account, ctx.region))
    if ids_wanted:
        known = {r["template_id"] for r in rows}
        missing = [t for t in ids_wanted if t not in known]
        if missing:
            raise InvalidIdNotFound("At least one of the launch templates specified in the request does not exist.")
        rows = [r for r in rows if r["template_id"] in ids_wanted]
    if names_wanted:
        known = {r["name"] for r in rows}
        if any(n not in known for n in names_wanted):
            raise InvalidNameNotFound("At least one of the launch templates specified in the request does not exist.")
        rows = [r for r in rows if r["name"] in names_wanted]
    tags = await tag_store.tags_of(db, account, [r["template_id"] for r in rows])
    items = [await template_item(db, r, tags[r["template_id"]]) for r in rows]
    items = apply_filters(items, params.get("Filters"), _TEMPLATE_FILTERS, tags=lambda t: tags[t["LaunchTemplateId"]])
    page, token = paginate(items, lambda t: t["LaunchTemplateId"], max_results, params.get("NextToken"),
                           minimum=1, maximum=200)
    return {"LaunchTemplates": page, "NextToken": token}


def _bool_text(value: Any) -> str | None:
    return None if value is None else ("true" if value else "false")


_VERSION_FILTERS = {
    "create-time": lambda v: v["CreateTime"].strftime("%Y-%m-%dT%H:%M:%S.000Z"),
    "ebs-optimized": lambda v: _bool_text(v["LaunchTemplateData"].get("EbsOptimized")),
    "http-endpoint": lambda v: (v["LaunchTemplateData"].get("MetadataOptions") or {}).get("HttpEndpoint"),
    "http-protocol-ipv4": lambda v: (v["LaunchTemplateData"].get("MetadataOptions") or {}).get("HttpProtocolIpv4"),
    "http-tokens": lambda v: (v["LaunchTemplateData"].get("MetadataOptions") or {}).get("HttpTokens"),
    "host-resource-group-arn": lambda v: (v["LaunchTemplateData"].get("Placement") or {}).get("HostResourceGroupArn"),
    "iam-instance-profile": lambda v: (v["LaunchTemplateData"].get("IamInstanceProfile") or {}).get("Arn"),
    "image-id": lambda v: v["LaunchTemplateData"].get("ImageId"),
    "instance-type": lambda v: v["LaunchTemplateData"].get("InstanceType"),
    "is-default-version": lambda v: _bool_text(v["DefaultVersion"]),
    "kernel-id": lambda v: v["LaunchTemplateData"].get("KernelId"),
    "license-configuration-arn": lambda v: [l.get("LicenseConfigurationArn") for l in
                                            v["LaunchTemplateData"].get("LicenseSpecifications") or []],
    "network-card-index": lambda v: [n.get("NetworkCardIndex") for n in
                                     v["LaunchTemplateData"].get("NetworkInterfaces") or []],
    "ram-disk-id": lambda v: v["LaunchTemplateData"].get("RamDiskId"),
}


async def describe_launch_template_versions(ctx: Any, params: dict) -> dict:
    db = ctx.app.db
    wanted = [str(v) for v in params.get("Versions") or []]
    max_results = params.get("MaxResults")
    if max_results is not None and not 1 <= max_results <= 200:
        raise InvalidParameterValue(f"Value ( {max_results} ) for parameter maxResults is invalid. "
                                    f"Expecting a value greater than 0 and less than 201.")
    if params.get("LaunchTemplateId") or params.get("LaunchTemplateName"):
        templates = [await find_template(ctx, params.get("LaunchTemplateId"), params.get("LaunchTemplateName"))]
    else:
        if not wanted or any(v not in ("$Latest", "$Default") for v in wanted):
            raise MissingParameter("The request must contain the parameter launchTemplateName or launchTemplateId "
                                   "(only $Latest and $Default versions can be described across templates)")
        templates = await db.fetchall("SELECT * FROM ec2_launch_templates WHERE account_id = ? AND region = ?",
                                      (account_of(ctx), ctx.region))
    check_dry_run(params)
    low = _bound(params.get("MinVersion"), "MinVersion")
    high = _bound(params.get("MaxVersion"), "MaxVersion")
    items = []
    for template in templates:
        numbers = await _version_numbers(db, template["template_id"])
        chosen = sorted({version_number(template, numbers, v) for v in wanted}) if wanted else numbers
        chosen = [n for n in chosen if (low is None or n >= low) and (high is None or n <= high)]
        for number in chosen:
            row = await _version_row(db, template["template_id"], number)
            items.append(await version_item(ctx, template, row, bool(params.get("ResolveAlias"))))
    items = apply_filters(items, params.get("Filters"), _VERSION_FILTERS)
    # newest first within a template, as EC2 lists them
    key = (lambda v: f"{v['LaunchTemplateId']}:{10**9 - v['VersionNumber']:010d}")
    page, token = paginate(items, key, max_results, params.get("NextToken"), minimum=1, maximum=200)
    return {"LaunchTemplateVersions": page, "NextToken": token}


def _bound(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if not str(value).isdigit():
        raise InvalidParameterValue(f"The value '{value}' for {name} must be a version number.")
    return int(value)


# -- GetLaunchTemplateData --------------------------------------------------------------------------

async def get_launch_template_data(ctx: Any, params: dict) -> dict:
    from ec2_api.instances import render_instance  # noqa: PLC0415
    instance_id = params.get("InstanceId")
    if not instance_id:
        raise MissingParameter("The request must contain the parameter InstanceId")
    (row,) = await instance_store.load_owned(ctx.app.db, account_of(ctx), ctx.region, [instance_id], now_us(ctx))
    check_dry_run(params)
    tags = (await tag_store.tags_of(ctx.app.db, account_of(ctx), [instance_id]))[instance_id]
    item = render_instance(row, tags)
    data = instance_store.data_of(row)
    options = {k: v for k, v in (item.get("MetadataOptions") or {}).items() if k != "State"}
    out: dict[str, Any] = {
        "ImageId": item["ImageId"], "InstanceType": item["InstanceType"], "KeyName": item.get("KeyName"),
        "EbsOptimized": item["EbsOptimized"], "Monitoring": {"Enabled": item["Monitoring"]["State"] == "enabled"},
        "Placement": {"AvailabilityZone": item["Placement"]["AvailabilityZone"], "GroupName": "",
                      "Tenancy": "default"},
        "DisableApiTermination": bool(row["disable_api_termination"]), "DisableApiStop": bool(row["disable_api_stop"]),
        "InstanceInitiatedShutdownBehavior": row["shutdown_behavior"], "UserData": row["user_data"],
        "MetadataOptions": options, "CpuOptions": item.get("CpuOptions"),
        "KernelId": data.get("kernel_id"), "RamDiskId": data.get("ramdisk_id"),
        "CapacityReservationSpecification": {"CapacityReservationPreference": "open"},
        "HibernationOptions": {"Configured": False}, "EnclaveOptions": {"Enabled": False},
        "MaintenanceOptions": {"AutoRecovery": "default"},
        "PrivateDnsNameOptions": {"HostnameType": "ip-name", "EnableResourceNameDnsARecord": False,
                                  "EnableResourceNameDnsAAAARecord": False},
    }
    root = data.get("root_volume") or {}
    if root:
        out["BlockDeviceMappings"] = [{"DeviceName": root.get("device_name", "/dev/xvda"),
                                       "Ebs": {"DeleteOnTermination": root.get("delete_on_termination", True),
                                               "VolumeSize": root.get("size_gib"),
                                               "VolumeType": root.get("volume_type", "gp2"), "Encrypted": False}}]
    for nic in item.get("NetworkInterfaces") or []:
        out["NetworkInterfaces"] = [{
            "DeviceIndex": 0, "SubnetId": nic["SubnetId"], "Groups": [g["GroupId"] for g in nic.get("Groups") or []],
            "DeleteOnTermination": True, "NetworkCardIndex": 0, "InterfaceType": "interface",
            "PrivateIpAddresses": [{"Primary": True, "PrivateIpAddress": nic["PrivateIpAddress"]}]}]
    visible = {k: v for k, v in tags.items() if not k.lower().startswith("aws:")}
    if visible:
        out["TagSpecifications"] = [{"ResourceType": "instance", "Tags": tag_store.tag_list(visible)}]
    return {"LaunchTemplateData": {k: v for k, v in out.items() if v is not None}}


# -- RunInstances -----------------------------------------------------------------------------------

def _given(value: Any) -> bool:
    return value is not None and value != [] and value != {}


def _merge_tags(template_specs: list[dict], call_specs: list[dict]) -> list[dict]:
    merged: dict[str, dict[str, str]] = {}
    for spec in list(template_specs) + list(call_specs):
        into = merged.setdefault(spec.get("ResourceType"), {})
        for tag in spec.get("Tags") or []:
            into[tag.get("Key")] = tag.get("Value", "")
    return [{"ResourceType": t, "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}
            for t, tags in merged.items()]


async def launch_parameters(ctx: Any, params: dict) -> tuple[dict, dict[str, str]]:
    """RunInstances' parameters with its LaunchTemplate applied and ``resolve:ssm:`` resolved, and
    the tags AWS adds to the instances. A call without either comes back unchanged."""
    spec = params.get("LaunchTemplate")
    extra_tags: dict[str, str] = {}
    if spec:
        template = await find_template(ctx, spec.get("LaunchTemplateId"), spec.get("LaunchTemplateName"))
        numbers = await _version_numbers(ctx.app.db, template["template_id"])
        version = version_number(template, numbers, spec.get("Version"))
        row = await _version_row(ctx.app.db, template["template_id"], version)
        data = json.loads(row["data"])
        merged = dict(params)
        for name, value in data.items():
            if name in _NOT_FOR_RUN:
                continue
            target = _RUN_NAMES.get(name, name)
            if not _given(merged.get(target)):
                merged[target] = value
        launch_tags = [t for t in data.get("TagSpecifications") or [] if t.get("ResourceType") in _RUN_TAG_TYPES]
        if launch_tags:     # (spot requests and elastic GPUs are not made here: their tags have nothing to tag)
            merged["TagSpecifications"] = _merge_tags(launch_tags, params.get("TagSpecifications") or [])
        params = merged
        extra_tags = {"aws:ec2launchtemplate:id": template["template_id"],
                      "aws:ec2launchtemplate:version": str(version)}
    image_id = params.get("ImageId")
    if isinstance(image_id, str) and image_id.startswith("resolve:ssm:"):
        params = {**params, "ImageId": await resolve_image_id(ctx, image_id)}
    return params, extra_tags


async def resolve_image_id(ctx: Any, reference: str) -> str:
    """The AMI id a ``resolve:ssm:<parameter>[:<version or label>]`` names: the parameter (the
    account's own, or a public one) must exist and have the aws:ec2:image data type, as EC2 asks."""
    found = await parameters.resolve(ctx.app.db, account_of(ctx), ctx.region, reference)
    if found is None:
        raise SsmInvalidParameter(f"The Systems Manager parameter in '{reference}' does not exist or the "
                                  f"version or label it names does not.")
    if found.data_type != "aws:ec2:image":
        raise SsmInvalidParameter("Unsupported data type. The following parameter data types are supported: "
                                  "aws:ec2:image")
    return found.value
