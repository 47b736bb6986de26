"""Server-side encryption as S3 does it: which mode a write uses, the keys a read needs, and the
headers every answer carries.

Modes (every new object is encrypted, as in S3 since January 2023):

- SSE-S3 (``AES256``): the object's data key is wrapped by a key derived from the data
  directory's master key (``storage.key_wrap.KeyRing``). The default.
- SSE-C (customer key headers): the data key is wrapped by the customer's key, which is never
  stored; only its HMAC (``KeyRing.customer_key_verifier``) is, to tell a later request with
  another key (403 AccessDenied) from one with the right key. Reads, HEAD and copies of the
  object need the key; answers echo its algorithm and MD5.
- SSE-KMS (``aws:kms``, ``aws:kms:dsse``): the data key comes from Nimbo's KMS
  (``kms_api.data_keys``), which also unwraps it on reads; the key's ARN, the encryption
  context and the bucket key flag are shown as S3 shows them.

An object's encryption is the JSON text of its ``sse`` column (``storage.sealed``): ``a`` the
mode (``AES256``, ``SSE-C``, ``aws:kms``, ``aws:kms:dsse``), ``k`` the wrapped data key (base64),
``v`` the customer key's verifier, ``id`` the KMS key ARN, ``c`` the KMS encryption context,
``uc`` whether the request gave a context, ``bk`` the bucket key flag, ``w`` (after
UpdateObjectEncryption) the object's own data key wrapped by the KMS data key. No ``sse``: a row written
before encryption at rest, stored and read as plaintext (and shown without an encryption header).

ETags: the MD5 of the plaintext for SSE-S3 (and plaintext rows); for SSE-C and SSE-KMS, as in
S3, an opaque value that is not the MD5 of the data (an HMAC of that MD5 under the data key).

SSE-C over plain HTTP: S3 refuses customer keys on connections without TLS. Nimbo accepts them
over TLS, and over plain HTTP only from a loopback client (the key never crosses a network: a
local client, or a TLS-terminating proxy on the same host); ``s3_sse_c_over_http = true`` in the
configuration accepts them from anywhere. Other requests get S3's InvalidRequest.

``NIMBO_S3_PLAINTEXT_WRITES=1`` in the server's environment makes writes that ask for no
encryption store plaintext rows as Nimbo did before encryption at rest (``PLAINTEXT``: no header,
the MD5 ETag). It exists for the benchmark's baseline (``bench.s3_encryption``) and the tests of
such rows; never set it on a server that holds real data.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
from dataclasses import dataclass, field
from typing import Any

from s3_api.bucket_encryption import (KMS_ALGORITHMS, blocked_by_default, customer_keys_blocked,
                                     default_of)
from s3_api.errors import (AccessDenied, InvalidArgument, InvalidEncryptionAlgorithmError,
                           InvalidRequest, NotImplementedOperation, S3Error)
from storage import key_wrap, sealed
from storage.objects import Bucket

SSE_C = "SSE-C"
AES256 = "AES256"
_SSE_HEADER = "x-amz-server-side-encryption"
_NOT_APPLICABLE = "The encryption parameters are not applicable to this object."
_NEEDS_KEY = ("The object was stored using a form of Server Side Encryption. The correct"
              " parameters must be provided to retrieve the object.")
ENVELOPE = b"sse-envelope"      # the associated data of ``w``
_KMS_CIPHERTEXT = ("The ciphertext refers to a customer master key that does not exist, does not"
                   " exist in this region, or you are not allowed to access.")


@dataclass
class Encryption:
    """One object's encryption: its stored description and, when known, its data key."""

    algorithm: str                      # AES256, SSE-C, aws:kms, aws:kms:dsse
    stored: dict = field(default_factory=dict)
    data_key: bytes | None = None       # in memory only
    customer_md5: str | None = None     # SSE-C: the request's key MD5 (answers echo it)

    @property
    def sse_text(self) -> str | None:
        return json.dumps(self.stored, separators=(",", ":")) if self.stored else None

    def etag(self, md5: bytes) -> str:
        """The ETag of data whose MD5 is ``md5``: that MD5 for SSE-S3, else opaque."""
        if self.algorithm == AES256 or self.data_key is None:
            return md5.hex()
        return hmac.new(self.data_key, md5, hashlib.sha256).digest()[:16].hex()

    def members(self, write: bool = False) -> dict:
        """The output members S3 answers with for this object (``write``: a PUT, COPY or
        CreateMultipartUpload answer, which also carries the KMS encryption context)."""
        if not self.algorithm:
            return {}
        if self.algorithm == SSE_C:
            out = {"SSECustomerAlgorithm": AES256}
            if self.customer_md5:
                out["SSECustomerKeyMD5"] = self.customer_md5
            return out
        out = {"ServerSideEncryption": self.algorithm}
        if self.algorithm in KMS_ALGORITHMS:
            out["SSEKMSKeyId"] = self.stored.get("id")
            if self.stored.get("bk"):
                out["BucketKeyEnabled"] = True
            if write and self.stored.get("uc") and self.stored.get("c"):
                out["SSEKMSEncryptionContext"] = _b64_json(self.stored["c"])
        return out


PLAINTEXT = Encryption("")      # a plaintext row (NIMBO_S3_PLAINTEXT_WRITES): no key, MD5 ETag


def parse(sse: str | None) -> Encryption | None:
    """The encryption an ``sse`` column describes (no data key), or None for plaintext."""
    if not sse:
        return None
    stored = json.loads(sse)
    return Encryption(stored["a"], stored)


def members_of(sse: str | None, params: dict | None = None) -> dict:
    """The output members for a stored object, without unwrapping anything (HEAD, Complete);
    ``params``: the request, whose SSE-C key MD5 is echoed."""
    found = parse(sse)
    if found is None:
        return {}
    if found.algorithm == SSE_C and params:
        found.customer_md5 = params.get("SSECustomerKeyMD5")
    return found.members()


_HEADERS = {"ServerSideEncryption": _SSE_HEADER,
            "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id",
            "SSEKMSEncryptionContext": "x-amz-server-side-encryption-context",
            "BucketKeyEnabled": "x-amz-server-side-encryption-bucket-key-enabled",
            "SSECustomerAlgorithm": "x-amz-server-side-encryption-customer-algorithm",
            "SSECustomerKeyMD5": "x-amz-server-side-encryption-customer-key-MD5"}


def response_headers(members: dict) -> dict[str, str]:
    """``members`` as HTTP headers (for answers no model serializes: POST Object's)."""
    return {_HEADERS[k]: ("true" if v is True else str(v)) for k, v in members.items()
            if k in _HEADERS and v is not None}


def _b64_json(value: dict) -> str:
    return base64.b64encode(json.dumps(value, separators=(",", ":")).encode()).decode()


# --- customer keys ---------------------------------------------------------------------------

def _invalid(message: str, value: str = "null") -> InvalidArgument:
    return InvalidArgument(message, ArgumentName=_SSE_HEADER, ArgumentValue=value)


def customer_key(ctx, params: dict, prefix: str = "") -> tuple[bytes, str] | None:
    """The customer key (and its MD5 as sent) of ``<prefix>SSECustomer*`` members, checked as S3
    checks them, or None when there are none."""
    algorithm = params.get(prefix + "SSECustomerAlgorithm")
    key = params.get(prefix + "SSECustomerKey")
    md5 = params.get(prefix + "SSECustomerKeyMD5")
    if algorithm is None and key is None and md5 is None:
        return None
    if not algorithm:
        raise _invalid("Requests specifying Server Side Encryption with Customer provided keys"
                       " must provide a valid encryption algorithm.")
    if algorithm != AES256:
        raise InvalidEncryptionAlgorithmError(ArgumentName=_SSE_HEADER, ArgumentValue=algorithm)
    if not key:
        raise _invalid("Requests specifying Server Side Encryption with Customer provided keys"
                       " must provide an appropriate secret key.")
    try:
        raw = base64.b64decode(key, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise _invalid("The secret key was invalid for the specified algorithm.")
    if not md5:
        raise _invalid("Requests specifying Server Side Encryption with Customer provided keys"
                       " must provide the client calculated MD5 of the secret key.")
    if base64.b64encode(hashlib.md5(raw).digest()).decode() != md5.strip():
        raise _invalid("The calculated MD5 hash of the key did not match the hash that was"
                       " provided.")
    if not _transport_ok(ctx):
        raise InvalidRequest("Requests specifying Server Side Encryption with Customer provided"
                             " keys must be made over a secure connection.")
    return raw, md5.strip()


def _transport_ok(ctx) -> bool:
    if getattr(ctx, "secure", False):
        return True
    config = getattr(getattr(ctx, "app", None), "config", None)
    if getattr(config, "s3_sse_c_over_http", False):
        return True
    remote = getattr(ctx, "remote", None)
    if remote is None:
        return True         # no transport (an in-process caller)
    try:
        return ipaddress.ip_address(remote.split("%", 1)[0]).is_loopback
    except ValueError:
        return remote.startswith("unix") or remote == ""     # a unix socket is local too


# --- writes ----------------------------------------------------------------------------------

_LOOK_UP = object()     # for_write's config: read it


def _context(value: str | None) -> dict[str, str]:
    if value is None:
        return {}
    try:
        parsed = json.loads(base64.b64decode(value, validate=True).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeError):
        parsed = None
    if not isinstance(parsed, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in parsed.items()):
        raise InvalidArgument("The header 'x-amz-server-side-encryption-context' shall be"
                              " Base64-encoded UTF-8 string holding JSON which represents a"
                              " string-string map",
                              ArgumentName="x-amz-server-side-encryption-context")
    return parsed


def requested(ctx, params: dict) -> tuple[str | None, tuple[bytes, str] | None]:
    """Check a write's encryption headers; (x-amz-server-side-encryption, customer key)."""
    customer = customer_key(ctx, params)
    sse = params.get("ServerSideEncryption")
    if customer is not None and (sse or params.get("SSEKMSKeyId")):
        raise _invalid("Server Side Encryption with Customer provided key is incompatible with"
                       " the encryption method specified", sse or "null")
    if sse is not None and sse not in (AES256,) + KMS_ALGORITHMS:
        raise _invalid("The encryption method specified is not supported", sse)
    if (params.get("SSEKMSKeyId") or params.get("SSEKMSEncryptionContext")) \
            and sse not in KMS_ALGORITHMS:
        raise InvalidArgument("Server Side Encryption with AWS KMS managed key requires HTTP"
                              " header x-amz-server-side-encryption : aws:kms",
                              ArgumentName=_SSE_HEADER, ArgumentValue=sse or "null")
    return sse, customer


async def for_write(ctx, params: dict, bucket: Bucket, key: str, config: Any = _LOOK_UP
                    ) -> Encryption:
    """The encryption of a new object from the request's headers and the bucket's default
    (``config``: the bucket's configuration as ``default_of`` gives it, when the caller read it
    already), with a fresh data key (SSE-KMS: from KMS)."""
    sse, customer = requested(ctx, params)
    if config is _LOOK_UP:
        config = default_of(ctx.state.store, bucket.name)
    keys: key_wrap.KeyRing = ctx.state.keys
    data_key = sealed.new_data_key()
    if customer is not None:
        if customer_keys_blocked(config, blocked_by_default(ctx)):
            raise AccessDenied()
        raw, md5 = customer
        stored = {"a": SSE_C, "k": _b64(key_wrap.wrap_customer(raw, data_key)),
                  "v": _b64(keys.customer_key_verifier(raw))}
        return Encryption(SSE_C, stored, data_key, md5)
    key_id = params.get("SSEKMSKeyId")
    bucket_key = params.get("BucketKeyEnabled")
    if sse is None and config is not None and config["a"] in KMS_ALGORITHMS:
        sse, key_id = config["a"], config.get("k")
    if bucket_key is None and config is not None and config["a"] in KMS_ALGORITHMS:
        bucket_key = bool(config.get("bk"))
    if sse is None and getattr(ctx.state, "plaintext_writes", False):
        return PLAINTEXT
    if sse is None or sse == AES256:
        return Encryption(AES256, {"a": AES256, "k": _b64(keys.wrap_s3(data_key))}, data_key)
    user_context = _context(params.get("SSEKMSEncryptionContext"))
    bucket_key = bool(bucket_key) and sse == "aws:kms"     # no bucket keys with DSSE-KMS
    context = dict(user_context)
    context.setdefault("aws:s3:arn", f"arn:aws:s3:::{bucket.name}" if bucket_key
                       else f"arn:aws:s3:::{bucket.name}/{key}")
    made = await _kms_call("generate_data_key", ctx, key_id or None, context,
                           region=bucket.region)
    stored = {"a": sse, "k": _b64(made.blob), "id": made.key_arn, "c": context}
    if user_context:
        stored["uc"] = True
    if bucket_key:
        stored["bk"] = True
    return Encryption(sse, stored, bytes(made.plaintext))


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- reads -----------------------------------------------------------------------------------

# SSE-S3 data keys unwrapped by reads, by (key ring, the object's ``sse`` text): the same text
# always unwraps to the same key (AES-GCM authenticates the wrapped key, and a text names one
# wrapped key), so a hot object's key is unwrapped once, not on every GET. Bounded; the master
# key's ring is in memory anyway. Only SSE-S3: KMS keys are asked of KMS (its checks, its
# disabled keys) and SSE-C keys come with each request.
_SSE_S3_KEYS: dict[tuple, tuple[dict, bytes]] = {}
_MAX_KNOWN_KEYS = 4096

async def for_read(ctx, params: dict, sse: str | None, *, prefix: str = "",
                   need_key: bool = True) -> Encryption | None:
    """The encryption of a stored object as this request may read it (its data key when
    ``need_key``), or None for plaintext; S3's errors for missing, wrong or superfluous customer
    keys (``prefix``: ``CopySource`` for a copy's source)."""
    customer = customer_key(ctx, params, prefix)
    keys: key_wrap.KeyRing = ctx.state.keys
    if need_key and customer is None and sse:
        known = _SSE_S3_KEYS.get((keys, sse))
        if known is not None:      # this object's SSE-S3 data key, unwrapped before
            return Encryption(AES256, dict(known[0]), known[1])
    found = parse(sse)
    if found is None:
        if customer is not None:
            raise InvalidRequest(_NOT_APPLICABLE)
        return None
    if found.algorithm == SSE_C:
        if customer is None:
            raise InvalidRequest(_NEEDS_KEY)
        raw, md5 = customer
        if not keys.customer_key_matches(raw, base64.b64decode(found.stored["v"])):
            raise AccessDenied()
        found.customer_md5 = md5
        if need_key:
            found.data_key = key_wrap.unwrap_customer(raw, base64.b64decode(found.stored["k"]))
        return found
    if customer is not None:
        raise InvalidRequest(_NOT_APPLICABLE)
    if not need_key:
        return found
    wrapped = base64.b64decode(found.stored["k"])
    if found.algorithm == AES256:
        found.data_key = keys.unwrap_s3(wrapped)
        if len(_SSE_S3_KEYS) >= _MAX_KNOWN_KEYS:
            _SSE_S3_KEYS.clear()
        _SSE_S3_KEYS[(keys, sse)] = (found.stored, found.data_key)
    else:
        _, found.data_key = await _kms_call("decrypt_data_key", ctx, wrapped,
                                            found.stored.get("c") or {})
        if found.stored.get("w"):      # UpdateObjectEncryption: the KMS key wraps the data key
            found.data_key = key_wrap.unwrap(found.data_key,
                                             base64.b64decode(found.stored["w"]), ENVELOPE)
    return found


async def kms_data_key(ctx, key_id: str | None, context: dict, region: str):
    """A fresh KMS data key (``.key_arn``, ``.plaintext``, ``.blob``), S3's errors on failure."""
    return await _kms_call("generate_data_key", ctx, key_id, context, region=region)


async def for_part(ctx, params: dict, upload_sse: str | None) -> Encryption | None:
    """The encryption of a part of an upload whose encryption is ``upload_sse`` (its data key),
    checking the part request's customer key as S3 does: an SSE-C upload needs it on every
    part, and the same key as CreateMultipartUpload had."""
    found = parse(upload_sse)
    if found is not None and found.algorithm == SSE_C and customer_key(ctx, params) is None:
        raise InvalidRequest("The multipart upload initiate requested encryption. Subsequent part"
                             " requests must include the appropriate encryption parameters.")
    try:
        return await for_read(ctx, params, upload_sse)
    except AccessDenied:
        raise _invalid("The provided encryption parameters did not match the ones used"
                       " originally.") from None


# --- KMS -------------------------------------------------------------------------------------

async def _kms_call(name: str, ctx, *args, **kwargs):
    if getattr(getattr(ctx, "auth", None), "signature_version", "v4") == "v2":
        raise InvalidArgument("Requests specifying Server Side Encryption with AWS KMS managed keys"
                              " require AWS Signature Version 4.", ArgumentName="Authorization",
                              ArgumentValue="null")
    try:
        from kms_api import data_keys  # noqa: PLC0415 (the KMS service, when it is installed)
    except ImportError:
        raise NotImplementedOperation(Header=_SSE_HEADER) from None
    try:
        return await getattr(data_keys, name)(ctx.app, ctx.account.account_id, *args, **kwargs)
    except S3Error:
        raise
    except Exception as exc:
        code = getattr(exc, "code", None)
        if not code:
            raise
        raise kms_error(code, str(getattr(exc, "message", None) or exc),
                        decrypting=name == "decrypt_data_key") from exc


_KMS_ERRORS: dict[str, type[S3Error]] = {}


def kms_error(code: str, message: str, decrypting: bool = False) -> S3Error:
    """S3's answer to a KMS failure: 403 AccessDenied for a key the requester may not use (and,
    reading, for a ciphertext no key of theirs opens), else 400 ``KMS.<code>``."""
    code = code.rsplit("#", 1)[-1]
    if code.startswith("KMS."):
        code = code[4:]
    if code == "AccessDeniedException" or (decrypting and code in (
            "InvalidCiphertextException", "NotFoundException", "IncorrectKeyException")):
        return AccessDenied(_KMS_CIPHERTEXT if decrypting else message or None)
    cls = _KMS_ERRORS.get(code)
    if cls is None:
        cls = _KMS_ERRORS[code] = type(code, (S3Error,), {
            "code": f"KMS.{code}", "status": 400, "message": "KMS refused the request."})
    return cls(message or None)
