"""Parameter Store: PutParameter, GetParameter(s), GetParametersByPath, DescribeParameters,
GetParameterHistory, LabelParameterVersion, DeleteParameter(s).

A tenant's parameters live per account and region (``storage.parameters``), with a version per
write (up to 100 kept) and labels. Names under ``/aws/service/`` are AWS's public parameters: here
they name the operator's public images (``/aws/service/nimbo/tiny/latest``,
``/aws/service/debian/release/bookworm/latest/amd64`` when such an image is registered), are
readable by every account and writable by none. SecureString values are stored encrypted under a
KMS key (``ssm_api.secure_strings``) and decrypted only for a read ``WithDecryption``.
"""
from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
from typing import Any

from ssm_api import errors, secure_strings
from storage import parameters as store
from storage.parameters import Parameter

_SEGMENT = re.compile(r"^[a-zA-Z0-9_.\-]+$")
_LABEL = re.compile(r"^[a-zA-Z0-9_.\-]{1,100}$")
_AMI = re.compile(r"^ami-([0-9a-f]{8}|[0-9a-f]{17})$")
_ARN = re.compile(r"^arn:aws[a-z-]*:ssm:[^:]*:(?:\d{12})?:parameter(/.*)$")
_KEY_ID = re.compile(r"^[a-zA-Z0-9:/_-]{1,256}$")
MAX_VALUE = {"Standard": 4096, "Advanced": 8192}
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _account(ctx: Any) -> str:
    return ctx.account.account_id


def _when(us: int) -> dt.datetime:
    return _EPOCH + dt.timedelta(microseconds=us)


def _now_us(ctx: Any) -> int:
    delta = ctx.now() - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def arn(ctx: Any, parameter: Parameter) -> str:
    owner = "" if parameter.public else _account(ctx)
    return f"arn:aws:ssm:{ctx.region}:{owner}:parameter/{parameter.name.lstrip('/')}"


def bare_name(name: str | None) -> str:
    """A parameter's name from a name or an ARN (``arn:aws:ssm:region:account:parameter/x`` -> ``x``)."""
    if not name:
        raise errors.ValidationException("1 validation error detected: Value null at 'name' failed to satisfy "
                                         "constraint: Member must not be null")
    match = _ARN.match(name)
    if match:
        path = match.group(1)
        name = path if path.count("/") > 1 else path[1:]
    return name


def check_name(name: str, *, writing: bool = False) -> str:
    if len(name) > 2048:
        raise errors.ValidationException("Parameter name must be at most 2048 characters")
    segments = name[1:].split("/") if name.startswith("/") else [name]
    if "/" in name and not name.startswith("/"):
        raise errors.ValidationException("Parameter name must be a fully qualified name.")
    if any(not _SEGMENT.match(s) for s in segments):
        raise errors.ValidationException(
            "Parameter name: can't be prefixed with \"aws\" or \"ssm\" (case-insensitive). If formed as a path, it "
            "can consist of sub-paths divided by slash symbol; each sub-path can be formed as a mix of letters, "
            "numbers and the following 3 symbols .-_")
    if len(segments) > 15:
        raise errors.HierarchyLevelLimitExceededException(
            "A hierarchy can have a maximum of 15 levels. For more information, see Requirements and Constraints "
            "for Parameter Names in the AWS Systems Manager User Guide.")
    if writing and segments[0].lower().startswith(("aws", "ssm")):
        raise errors.ValidationException(
            f"No access to reserved parameter name: {name}. Parameter name: can't be prefixed with \"aws\" or "
            f"\"ssm\" (case-insensitive).")
    return name


def _split_selector(name: str) -> tuple[str, str | None]:
    base, sep, selector = name.partition(":")
    if not sep:
        return name, None
    if not selector:
        raise errors.ValidationException(f"Invalid parameter name: {name}")
    return base, selector


def parameter_item(ctx: Any, p: Parameter, selector: str | None = None) -> dict:
    item = {"Name": p.name, "Type": p.type, "Value": p.value, "Version": p.version,
            "LastModifiedDate": _when(p.modified_us), "ARN": arn(ctx, p), "DataType": p.data_type or "text"}
    if selector is not None:
        item["Selector"] = f":{selector}"
    return item


def metadata_item(ctx: Any, p: Parameter) -> dict:
    item = {"Name": p.name, "ARN": arn(ctx, p), "Type": p.type, "KeyId": p.key_id,
            "LastModifiedDate": _when(p.modified_us), "LastModifiedUser": p.modified_by or None,
            "Description": p.description, "AllowedPattern": p.allowed_pattern, "Version": p.version,
            "Tier": p.tier, "Policies": [], "DataType": p.data_type or "text"}
    return {k: v for k, v in item.items() if v is not None}


async def shown_item(ctx: Any, p: Parameter, selector: str | None, with_decryption: bool) -> dict:
    """``parameter_item`` with a SecureString's plaintext when ``with_decryption`` (its ciphertext
    otherwise, as AWS answers)."""
    item = parameter_item(ctx, p, selector)
    if with_decryption and p.type == secure_strings.SECURE_STRING and not p.public:
        item["Value"] = await secure_strings.decrypt(ctx, arn(ctx, p), p)
    return item


async def _find(ctx: Any, name: str) -> tuple[Parameter, str | None]:
    """The version ``name`` (or ``name:selector``) names; the AWS error when there is none."""
    base, selector = _split_selector(bare_name(name))
    found = await store.lookup(ctx.app.db, _account(ctx), ctx.region, base)
    if not found:
        raise errors.ParameterNotFound(f"Parameter {base} not found.")
    chosen = store.select(found, selector)
    if chosen is None:
        raise errors.ParameterVersionNotFound(
            f"Systems Manager could not find version {selector} of {base}. Verify the version and try again.")
    return chosen, selector


# -- reads ------------------------------------------------------------------------------------------

async def get_parameter(ctx: Any, params: dict) -> dict:
    parameter, selector = await _find(ctx, params.get("Name"))
    return {"Parameter": await shown_item(ctx, parameter, selector, bool(params.get("WithDecryption")))}


async def get_parameters(ctx: Any, params: dict) -> dict:
    names = params.get("Names") or []
    if not 1 <= len(names) <= 10:
        raise errors.ValidationException(f"1 validation error detected: Value '{names}' at 'names' failed to "
                                         f"satisfy constraint: Member must have length between 1 and 10")
    found, invalid = [], []
    for name in dict.fromkeys(names):
        try:
            parameter, selector = await _find(ctx, name)
        except (errors.ParameterNotFound, errors.ParameterVersionNotFound, errors.ValidationException):
            invalid.append(name)
            continue
        found.append(await shown_item(ctx, parameter, selector, bool(params.get("WithDecryption"))))
    return {"Parameters": found, "InvalidParameters": invalid}


def _token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def _after(token: str | None) -> str | None:
    if not token:
        return None
    try:
        after = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
    except (binascii.Error, ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise errors.InvalidNextToken("The specified token isn't valid.") from None
    if not isinstance(after, str):
        raise errors.InvalidNextToken("The specified token isn't valid.")
    return after


def _page(items: list, key, max_results: int | None, token: str | None, low: int, high: int, default: int):
    if max_results is not None and not low <= max_results <= high:
        raise errors.ValidationException(
            f"1 validation error detected: Value '{max_results}' at 'maxResults' failed to satisfy constraint: "
            f"Member must have value less than or equal to {high}")
    after = _after(token)
    ordered = sorted(items, key=key)
    if after is not None:
        ordered = [i for i in ordered if key(i) > after]
    size = max_results or default
    page = ordered[:size]
    return page, (_token(key(page[-1])) if len(ordered) > size else None)


def _check_filter_option(key: str, option: str, allowed: tuple) -> None:
    if option not in allowed:
        raise errors.InvalidFilterOption(f"The following filter option is not valid: {option}. Valid options "
                                         f"include: [{', '.join(allowed)}].")


def _string_filters(filters: list[dict], allowed_keys: tuple[str, ...]) -> list:
    """Checks (parameter -> bool) of ParameterStringFilters."""
    checks = []
    for flt in filters or []:
        key, option, values = flt.get("Key") or "", flt.get("Option") or "Equals", list(flt.get("Values") or [])
        if not (key in allowed_keys or (key.startswith("tag:") and "tag:" in allowed_keys)):
            raise errors.InvalidFilterKey(f"The following filter key is not valid: {key}. Valid filter keys "
                                          f"include: [{', '.join(k for k in allowed_keys if k != 'tag:')}].")
        if key == "Name":
            _check_filter_option(key, option, ("Equals", "BeginsWith", "Contains"))
            if option == "Equals":
                checks.append(lambda p, v=values: p.name in v)
            elif option == "BeginsWith":
                checks.append(lambda p, v=values: p.name.startswith(tuple(v)))
            else:
                checks.append(lambda p, v=values: any(x in p.name for x in v))
        elif key == "Path":
            _check_filter_option(key, option, ("Recursive", "OneLevel"))
            checks.append(lambda p, v=values, o=option: any(_under(p.name, x, o == "Recursive") for x in v))
        elif key == "Label":
            _check_filter_option(key, option, ("Equals",))
            checks.append(lambda p, v=values: any(label in v for label in p.labels))
        elif key.startswith("tag:"):
            checks.append(("tag", key[4:], values))
        else:
            _check_filter_option(key, option, ("Equals", "BeginsWith") if key != "Type" else ("Equals",))
            attr = {"Type": "type", "KeyId": "key_id", "Tier": "tier", "DataType": "data_type"}[key]
            if option == "BeginsWith":
                checks.append(lambda p, v=values, a=attr: str(getattr(p, a) or "").startswith(tuple(v)))
            else:
                checks.append(lambda p, v=values, a=attr: getattr(p, a) in v)
    return checks


def _under(name: str, path: str, recursive: bool) -> bool:
    prefix = path if path.endswith("/") else path + "/"
    if not name.startswith(prefix) or name == prefix:
        return False
    return recursive or "/" not in name[len(prefix):]


async def _passes(ctx: Any, parameter: Parameter, checks: list) -> bool:
    for check in checks:
        if isinstance(check, tuple):
            _, key, values = check
            tags = await store.tags_of(ctx.app.db, _account(ctx), ctx.region, parameter.name)
            if key not in tags or (values and tags[key] not in values):
                return False
        elif not check(parameter):
            return False
    return True


async def get_parameters_by_path(ctx: Any, params: dict) -> dict:
    path = params.get("Path") or ""
    if not path.startswith("/"):
        raise errors.ValidationException("The parameter doesn't meet the parameter name requirements. The parameter "
                                         "name must begin with a forward slash \"/\".")
    if path != "/":
        check_name(path.rstrip("/"))
    checks = _string_filters(params.get("ParameterFilters"), ("Type", "KeyId", "Label"))
    recursive = bool(params.get("Recursive"))
    if path.startswith(store.PUBLIC_PREFIX) or store.PUBLIC_PREFIX.startswith(path.rstrip("/") + "/") and path != "/":
        candidates = list((await store.public_parameters(ctx.app.db, ctx.region)).values())
    else:
        candidates = await store.current(ctx.app.db, _account(ctx), ctx.region)
    matched = [p for p in candidates if _under(p.name, path, recursive) and await _passes(ctx, p, checks)]
    page, token = _page(matched, lambda p: p.name, params.get("MaxResults"), params.get("NextToken"), 1, 10, 10)
    decrypt = bool(params.get("WithDecryption"))
    return {"Parameters": [await shown_item(ctx, p, None, decrypt) for p in page], "NextToken": token}


async def describe_parameters(ctx: Any, params: dict) -> dict:
    if params.get("Filters") and params.get("ParameterFilters"):
        raise errors.ValidationException("You can use either Filters or ParameterFilters in a single request.")
    old = [{"Key": f.get("Key"), "Option": "Equals", "Values": f.get("Values")} for f in params.get("Filters") or []]
    for flt in old:
        if flt["Key"] not in ("Name", "Type", "KeyId"):
            raise errors.InvalidFilterKey(f"The following filter key is not valid: {flt['Key']}. Valid filter keys "
                                          f"include: [Name, Type, KeyId].")
    checks = _string_filters(old or params.get("ParameterFilters"),
                             ("Name", "Type", "KeyId", "Path", "Tier", "DataType", "Label", "tag:"))
    candidates = await store.current(ctx.app.db, _account(ctx), ctx.region)
    if any(f.get("Key") == "Label" for f in params.get("ParameterFilters") or []):
        candidates = [v for p in candidates
                      for v in await store.versions(ctx.app.db, _account(ctx), ctx.region, p.name)]
    matched = [p for p in candidates if await _passes(ctx, p, checks)]
    page, token = _page(matched, lambda p: f"{p.name}\x00{p.version:012d}", params.get("MaxResults"),
                        params.get("NextToken"), 1, 50, 50)
    return {"Parameters": [metadata_item(ctx, p) for p in page], "NextToken": token}


async def get_parameter_history(ctx: Any, params: dict) -> dict:
    name = bare_name(params.get("Name"))
    found = await store.lookup(ctx.app.db, _account(ctx), ctx.region, name)
    if not found:
        raise errors.ParameterNotFound(f"Parameter {name} not found.")
    page, token = _page(found, lambda p: f"{p.version:012d}", params.get("MaxResults"), params.get("NextToken"),
                        1, 50, 50)
    items = []
    for p in page:
        item = metadata_item(ctx, p)
        item.pop("ARN", None)
        item.update(Value=(await shown_item(ctx, p, None, bool(params.get("WithDecryption"))))["Value"],
                    Labels=p.labels)
        items.append(item)
    return {"Parameters": items, "NextToken": token}


# -- writes -----------------------------------------------------------------------------------------

def _check_value(value: Any, kind: str, tier: str, data_type: str, pattern: str | None) -> str:
    if value is None or value == "":
        raise errors.ValidationException("1 validation error detected: Value at 'value' failed to satisfy "
                                         "constraint: Member must have length greater than or equal to 1")
    if len(value) > MAX_VALUE.get(tier, 4096):
        raise errors.ValidationException(f"Standard tier parameters support a maximum parameter value of 4096 "
                                         f"characters. To create a larger parameter value, upgrade the parameter "
                                         f"to use the advanced-parameter tier." if tier == "Standard" else
                                         "Parameter value exceeds the maximum length of 8192 characters.")
    if data_type == "aws:ec2:image":
        if kind != "String":
            raise errors.ValidationException("The aws:ec2:image data type is only supported for String parameters.")
        if not _AMI.match(value):
            raise errors.ValidationException(f"Parameter value, {value}, is not a valid AMI ID. The aws:ec2:image "
                                             f"data type requires an AMI ID (ami-...).")
    if pattern:
        try:
            compiled = re.compile(pattern)
        except re.error as exc:
            raise errors.InvalidAllowedPatternException(f"The allowed pattern is not a valid regular expression: "
                                                        f"{exc}") from None
        items = value.split(",") if kind == "StringList" else [value]
        if not all(compiled.fullmatch(item) for item in items):
            raise errors.ParameterPatternMismatchException(
                f"Parameter value, cannot be validated against allowedPattern: {pattern}")
    return value


async def put_parameter(ctx: Any, params: dict) -> dict:
    name = check_name(bare_name(params.get("Name")), writing=True)
    kind = params.get("Type")
    if kind is not None and kind not in ("String", "StringList", "SecureString"):
        raise errors.ValidationException(f"1 validation error detected: Value '{kind}' at 'type' failed to satisfy "
                                         f"constraint: Member must satisfy enum value set: "
                                         f"[SecureString, StringList, String]")
    key_id = params.get("KeyId")
    if key_id is not None and not _KEY_ID.match(key_id):
        raise errors.ValidationException(f"1 validation error detected: Value '{key_id}' at 'keyId' failed to "
                                         f"satisfy constraint: Member must satisfy regular expression pattern: "
                                         f"^([a-zA-Z0-9:/_-]+)$")
    tier = params.get("Tier") or "Standard"
    if tier not in ("Standard", "Advanced", "Intelligent-Tiering"):
        raise errors.ValidationException(f"Value '{tier}' at 'tier' failed to satisfy constraint: Member must "
                                         f"satisfy enum value set: [Advanced, Intelligent-Tiering, Standard]")
    tier = "Advanced" if tier == "Advanced" else "Standard"
    data_type = params.get("DataType")
    if data_type is not None and data_type not in ("text", "aws:ec2:image", "aws:ssm:integration"):
        raise errors.ValidationException(f"The following data type is not supported: {data_type} (Data type names "
                                         f"are all lowercase.)")
    if params.get("Tags") and params.get("Overwrite"):
        raise errors.ValidationException("Invalid request: tags and overwrite can't be used together. To create a "
                                         "parameter with tags, please remove overwrite flag. To update tags for an "
                                         "existing parameter, please use AddTagsToResource or RemoveTagsFromResource.")
    description = params.get("Description")
    if description is not None and len(description) > 1024:
        raise errors.ValidationException("Parameter description must be at most 1024 characters")
    existing = await store.versions(ctx.app.db, _account(ctx), ctx.region, name)
    if existing and not params.get("Overwrite"):
        raise errors.ParameterAlreadyExists()
    latest = existing[-1] if existing else None
    if latest is None and kind is None:
        raise errors.ValidationException("A parameter type is required when you create a parameter.")
    effective_type = kind or latest.type
    secure = effective_type == secure_strings.SECURE_STRING
    if key_id is not None and not secure:
        raise errors.ValidationException(f"KeyId is only supported for SecureString parameters; {name} is a "
                                         f"{effective_type} parameter.")
    if secure:      # the key named now, else the one the parameter was encrypted under, else aws/ssm
        key_id = key_id or (latest.key_id if latest and latest.type == effective_type else None) \
            or secure_strings.DEFAULT_KEY
    effective_data_type = data_type or (latest.data_type if latest else "text")
    pattern = params.get("AllowedPattern") if params.get("AllowedPattern") is not None else (
        latest.allowed_pattern if latest else None)
    value = _check_value(params.get("Value"), effective_type, tier, effective_data_type, pattern)
    tags = {t.get("Key"): t.get("Value", "") for t in params.get("Tags") or []}
    parameter = Parameter(name, effective_type, value, 0, _now_us(ctx), data_type, description,
                          params.get("AllowedPattern"), tier, key_id, [], [], f"arn:aws:iam::{_account(ctx)}:root")
    if secure:      # encrypted before anything is written: the plaintext never reaches the database
        parameter.value = await secure_strings.encrypt(ctx, arn(ctx, parameter), key_id, value)
    try:
        stored = await store.put(ctx.app.db, _account(ctx), ctx.region, parameter,
                                 overwrite=bool(params.get("Overwrite")), tags=tags)
    except store.ParameterExists:
        raise errors.ParameterAlreadyExists() from None
    except store.VersionLimit:
        raise errors.ParameterMaxVersionLimitExceeded(
            f"You attempted to create a new version of {name} by calling the PutParameter API with the overwrite "
            f"flag. Version 1, the oldest version, can't be deleted because it has a label associated with it. "
            f"Move the label to another version of the parameter, and try again.") from None
    return {"Version": stored.version, "Tier": stored.tier}


async def label_parameter_version(ctx: Any, params: dict) -> dict:
    name = bare_name(params.get("Name"))
    labels = list(params.get("Labels") or [])
    if not 1 <= len(labels) <= 10:
        raise errors.ValidationException("Labels must contain between 1 and 10 labels")
    found = await store.versions(ctx.app.db, _account(ctx), ctx.region, name)
    if not found:
        raise errors.ParameterNotFound(f"Parameter {name} not found.")
    version = params.get("ParameterVersion") or found[-1].version
    target = next((p for p in found if p.version == version), None)
    if target is None:
        raise errors.ParameterVersionNotFound(
            f"Systems Manager could not find version {version} of {name}. Verify the version and try again.")
    invalid = [l for l in labels if not _LABEL.match(l) or l.lower().startswith(("aws", "ssm")) or l[0].isdigit()]
    valid = [l for l in labels if l not in invalid]
    if len(set(target.labels) | set(valid)) > 10:
        raise errors.ParameterVersionLabelLimitExceeded()
    if valid:
        await store.set_labels(ctx.app.db, _account(ctx), ctx.region, name, version, valid)
    return {"InvalidLabels": invalid, "ParameterVersion": version}


async def delete_parameter(ctx: Any, params: dict) -> dict:
    name = bare_name(params.get("Name"))
    if not await store.delete(ctx.app.db, _account(ctx), ctx.region, [name]):
        raise errors.ParameterNotFound(f"Parameter {name} not found.")
    return {}


async def delete_parameters(ctx: Any, params: dict) -> dict:
    names = [bare_name(n) for n in params.get("Names") or []]
    if not 1 <= len(names) <= 10:
        raise errors.ValidationException("1 validation error detected: Value at 'names' failed to satisfy "
                                         "constraint: Member must have length between 1 and 10")
    deleted = await store.delete(ctx.app.db, _account(ctx), ctx.region, list(dict.fromkeys(names)))
    return {"DeletedParameters": deleted, "InvalidParameters": [n for n in dict.fromkeys(names) if n not in deleted]}
