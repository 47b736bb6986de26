"""Signature Version 4 verification (Authorization header and presigned query), and the
entry point :func:`authenticate`, which also dispatches S3's SigV2 to :mod:`.sigv2`.

Order of checks, cheapest and least revealing first: parse, region, time, payload-hash header,
unsigned x-amz-* headers (S3), access key lookup, signature, declared-vs-actual body hash.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from . import sigv2
from .errors import (
    AuthorizationHeaderMalformed,
    AuthorizationQueryParametersError,
    ContentSHA256Mismatch,
    HeadersNotSigned,
    InvalidAccessKeyId,
    InvalidAuthArgument,
    MissingContentSHA256,
    MissingDateHeader,
    RequestExpired,
    RequestNotYetValid,
    SignatureDoesNotMatch,
    WrongRegion,
)
from .request import AuthResult, SignedRequest, header_names, header_value, header_values
from .signing import (
    ALGORITHM,
    EMPTY_SHA256,
    MAX_SKEW,
    PAYLOAD_MARKERS,
    UNSIGNED_PAYLOAD,
    as_utc,
    canonical_headers,
    canonical_query,
    canonical_request,
    canonical_uri_generic,
    canonical_uri_s3,
    check_skew,
    derive_signing_key,
    format_amz_date,
    format_iso8601,
    is_sha256_hex,
    parse_amz_date,
    parse_http_date,
    query_params,
    sign_hex,
    signatures_equal,
    spaced_hex,
    string_to_sign,
)

SecretLookup = Callable[[str], Awaitable[str | None]]

MAX_PRESIGN_EXPIRES = 604800  # seven days
PRESIGN_PARAMS = ("X-Amz-Algorithm", "X-Amz-Credential", "X-Amz-Signature", "X-Amz-Date",
                  "X-Amz-SignedHeaders", "X-Amz-Expires")
_SCOPE_DATE = re.compile(r"\d{8}")
_CREDENTIAL_FORM = '"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request"'
_HEADER_PREFIX = "The authorization header is malformed; "
_ONLY_ONE = ("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
             "Signature query string parameter or the Authorization header should be specified")


@dataclass(frozen=True, slots=True)
class Credential:
    access_key_id: str
    date: str
    region: str
    service: str

    @property
    def scope(self) -> str:
        return f"{self.date}/{self.region}/{self.service}/aws4_request"


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    credential: Credential
    signed_headers: tuple[str, ...]
    signature: str


def _malformed(detail: str, in_query: bool) -> Exception:
    if in_query:
        return AuthorizationQueryParametersError(detail)
    return AuthorizationHeaderMalformed(_HEADER_PREFIX + detail)


# The credential scope and the signed header list recur from request to request (one client, one
# day): parsed once (the answers are immutable; malformed values raise each time, uncached).
@lru_cache(maxsize=1024)
def parse_credential(value: str, *, in_query: bool = False) -> Credential:
    """'AKID/YYYYMMDD/region/service/aws4_request' -> Credential."""
    parts = value.strip().rsplit("/", 4)
    if len(parts) != 5 or not all(parts):
        detail = f"the Credential is mal-formed; expecting {_CREDENTIAL_FORM}."
        if in_query:
            detail = "Error parsing the X-Amz-Credential parameter; " + detail
        raise _malformed(detail, in_query)
    akid, date, region, service, terminal = parts
    if terminal != "aws4_request":
        raise _malformed(f'incorrect terminal "{terminal}". This endpoint uses "aws4_request".',
                         in_query)
    if not _SCOPE_DATE.fullmatch(date):
        raise _malformed(f'invalid credential date "{date}".', in_query)
    return Credential(akid, date, region, service)


@lru_cache(maxsize=1024)
def parse_signed_headers(value: str, *, in_query: bool = False) -> tuple[str, ...]:
    names = tuple(name.strip().lower() for name in value.split(";"))
    if not names or not all(names):
        raise _malformed(f'the SignedHeaders "{value}" are malformed.', in_query)
    return names


def parse_authorization(value: str | SignedRequest) -> ParsedAuthorization:
    """Parse 'AWS4-HMAC-SHA256 Credential=..., SignedHeaders=..., Signature=...'.

    Takes the header value, or a request (whose Authorization header must then be present).
    """
    if isinstance(value, SignedRequest):
        header = header_value(value.headers, "authorization")
        if header is None:
            raise AuthorizationHeaderMalformed(_HEADER_PREFIX + "no Authorization header.")
        value = header
    algorithm, _, rest = value.strip().partition(" ")
    if algorithm != ALGORITHM:
        raise InvalidAuthArgument("Unsupported Authorization Type", "Authorization", value)
    fields: dict[str, str] = {}
    for component in rest.split(","):
        component = component.strip()
        if not component:
            continue
        key, sep, val = component.partition("=")
        if not sep or key.strip() in fields:
            raise AuthorizationHeaderMalformed(
                _HEADER_PREFIX + f'the authorization component "{component}" is malformed.')
        fields[key.strip()] = val.strip()
    if not {"Credential", "SignedHeaders", "Signature"} <= fields.keys():
        raise AuthorizationHeaderMalformed(
            _HEADER_PREFIX + "the authorization header requires three components: "
            "Credential, SignedHeaders, and Signature.")
    signature = fields["Signature"]
    if not signature:
        raise AuthorizationHeaderMalformed(_HEADER_PREFIX + "the Signature is empty.")
    return ParsedAuthorization(parse_credential(fields["Credential"]),
                               parse_signed_headers(fields["SignedHeaders"]), signature)


def _header_timestamp(req: SignedRequest) -> tuple[str, datetime, str]:
    """(timestamp as signed, its datetime, the raw header value) from X-Amz-Date or Date."""
    amz = header_value(req.headers, "x-amz-date")
    if amz is not None:
        moment = parse_amz_date(amz.strip())
        if moment is None:
            raise MissingDateHeader()
        return amz.strip(), moment, amz
    date = header_value(req.headers, "date")
    moment = parse_http_date(date) if date is not None else None
    if moment is None:
        raise MissingDateHeader()
    return format_amz_date(moment), moment, date


def _check_region(region: str, served_regions: Collection[str], in_query: bool) -> None:
    if region not in served_regions:
        expected = next(iter(served_regions), "us-east-1")
        raise WrongRegion(region, expected, in_query=in_query)


def _check_s3_unsigned_headers(req: SignedRequest, signed: Collection[str]) -> None:
    """S3 refuses x-amz-* headers left out of the signature (x-amz-content-sha256 excepted)."""
    unsigned = sorted(name for name in header_names(req.headers)
                      if name.startswith("x-amz-") and name not in signed
                      and name != "x-amz-content-sha256")
    if unsigned:
        raise HeadersNotSigned(unsigned)


def _s3_payload_hash_header(req: SignedRequest) -> str:
    value = header_value(req.headers, "x-amz-content-sha256")
    if value is None:
        raise MissingContentSHA256()
    value = value.strip()
    if value not in PAYLOAD_MARKERS and not is_sha256_hex(value):
        raise InvalidAuthArgument(
            "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, "
            "STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a "
            "valid sha256 value.", "x-amz-content-sha256", value)
    return value


def build_canonical_request(req: SignedRequest, service: str, signed_headers: Collection[str],
                            payload_hash: str, exclude_query: Collection[str] = ()) -> str:
    """The SigV4 canonical request for ``req`` as the client must have built it."""
    names = sorted(set(signed_headers))
    uri = canonical_uri_s3(req.raw_path) if service == "s3" else canonical_uri_generic(req.raw_path)
    return canonical_request(req.method, uri, canonical_query(req.raw_query, exclude_query),
                             canonical_headers(req.headers, names), ";".join(names), payload_hash)


def _verify(req: SignedRequest, credential: Credential, secret: str, amz_date: str,
            signed_headers: Collection[str], payload_hash: str, provided: str,
            exclude_query: Collection[str] = ()) -> tuple[bytes, str]:
    """Check ``provided`` against the signature computed with ``secret``; return (key, sig)."""
    canonical = build_canonical_request(req, credential.service, signed_headers, payload_hash,
                                        exclude_query)
    to_sign = string_to_sign(amz_date, credential.scope, canonical)
    key = derive_signing_key(secret, credential.date, credential.region, credential.service)
    expected = sign_hex(key, to_sign)
    if not signatures_equal(expected, provided):
        raise SignatureDoesNotMatch(extra={
            "AWSAccessKeyId": credential.access_key_id,
            "StringToSign": to_sign,
            "SignatureProvided": provided,
            "StringToSignBytes": spaced_hex(to_sign),
            "CanonicalRequest": canonical,
            "CanonicalRequestBytes": spaced_hex(canonical),
        })
    return key, expected


def _check_declared_body(service: str, payload_hash: str, body_sha256: str | None) -> None:
    """S3: a signed hex payload hash must be the hash of the body, when the caller knows it."""
    if (service == "s3" and body_sha256 is not None and is_sha256_hex(payload_hash)
            and payload_hash.lower() != body_sha256.lower()):
        raise ContentSHA256Mismatch(payload_hash, body_sha256)


async def _secret(lookup_secret: SecretLookup, access_key_id: str) -> str:
    secret = await lookup_secret(access_key_id)
    if secret is None:
        raise InvalidAccessKeyId(access_key_id)
    return secret


async def authenticate_header_v4(req: SignedRequest, value: str, lookup_secret: SecretLookup,
                                 now: datetime, served_regions: Collection[str],
                                 body_sha256: str | None = None) -> AuthResult:
    now = as_utc(now)
    parsed = parse_authorization(value)
    cred = parsed.credential
    _check_region(cred.region, served_regions, in_query=False)
    amz_date, moment, raw_date = _header_timestamp(req)
    if amz_date[:8] != cred.date:
        raise AuthorizationHeaderMalformed(
            _HEADER_PREFIX + "Invalid credential date. Date is not the same as X-Amz-Date.")
    check_skew(raw_date, moment, now)
    if cred.service == "s3":
        payload_hash = _s3_payload_hash_header(req)
        _check_s3_unsigned_headers(req, parsed.signed_headers)
    elif body_sha256 is not None:
        payload_hash = body_sha256
    else:
        payload_hash = (header_value(req.headers, "x-amz-content-sha256") or EMPTY_SHA256).strip()
    secret = await _secret(lookup_secret, cred.access_key_id)
    key, signature = _verify(req, cred, secret, amz_date, parsed.signed_headers, payload_hash,
                             parsed.signature)
    _check_declared_body(cred.service, payload_hash, body_sha256)
    return AuthResult(
        access_key_id=cred.access_key_id, region=cred.region, service=cred.service,
        signature_version="v4", presigned=False, payload_hash=payload_hash, signing_key=key,
        seed_signature=signature, amz_date=amz_date, scope=cred.scope,
        security_token=header_value(req.headers, "x-amz-security-token"))


def _single(params: dict[str, list[str]], name: str) -> str | None:
    values = params.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise AuthorizationQueryParametersError(f"{name} may be specified only once.")
    return values[0]


def _presign_expires(raw: str) -> int:
    try:
        expires = int(raw)
    except ValueError:
        raise AuthorizationQueryParametersError("X-Amz-Expires should be a number") from None
    if expires < 0:
        raise AuthorizationQueryParametersError("X-Amz-Expires must be non-negative")
    if expires < 1:
        # CHOICE: AWS documents 1 second as the minimum; zero is refused as malformed.
        raise AuthorizationQueryParametersError("X-Amz-Expires must be at least 1 second")
    if expires > MAX_PRESIGN_EXPIRES:
        raise AuthorizationQueryParametersError(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800")
    return expires


async def authenticate_presigned_v4(req: SignedRequest, params: dict[str, list[str]],
                                    lookup_secret: SecretLookup, now: datetime,
                                    served_regions: Collection[str],
                                    body_sha256: str | None = None) -> AuthResult:
    now = as_utc(now)
    values = {name: _single(params, name) for name in PRESIGN_PARAMS}
    if any(v is None for v in values.values()):
        raise AuthorizationQueryParametersError(
            "Query-string authentication version 4 requires the X-Amz-Algorithm, "
            "X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and "
            "X-Amz-Expires parameters.")
    if values["X-Amz-Algorithm"] != ALGORITHM:
        raise AuthorizationQueryParametersError(
            f'X-Amz-Algorithm only supports "{ALGORITHM}"')
    cred = parse_credential(values["X-Amz-Credential"], in_query=True)
    _check_region(cred.region, served_regions, in_query=True)
    amz_date = values["X-Amz-Date"]
    moment = parse_amz_date(amz_date)
    if moment is None:
        raise AuthorizationQueryParametersError(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    if amz_date[:8] != cred.date:
        raise AuthorizationQueryParametersError(
            "Invalid credential date. Date is not the same as X-Amz-Date.")
    expires = _presign_expires(values["X-Amz-Expires"])
    signed = parse_signed_headers(values["X-Amz-SignedHeaders"], in_query=True)
    if now > moment + timedelta(seconds=expires):
        raise RequestExpired(extra={"X-Amz-Expires": str(expires),
                                    "Expires": format_iso8601(moment + timedelta(seconds=expires)),
                                    "ServerTime": format_iso8601(now)})
    if moment > now + MAX_SKEW:
        raise RequestNotYetValid(extra={"X-Amz-Date": amz_date,
                                        "ServerTime": format_iso8601(now)})
    if cred.service == "s3":
        payload_hash = _single(params, "X-Amz-Content-Sha256")
        if payload_hash is None and "x-amz-content-sha256" in signed:
            payload_hash = header_value(req.headers, "x-amz-content-sha256")
        payload_hash = (payload_hash or UNSIGNED_PAYLOAD).strip()
        _check_s3_unsigned_headers(req, signed)
    else:
        payload_hash = body_sha256 if body_sha256 is not None else EMPTY_SHA256
    secret = await _secret(lookup_secret, cred.access_key_id)
    key, signature = _verify(req, cred, secret, amz_date, signed, payload_hash,
                             values["X-Amz-Signature"], exclude_query=("X-Amz-Signature",))
    _check_declared_body(cred.service, payload_hash, body_sha256)
    return AuthResult(
        access_key_id=cred.access_key_id, region=cred.region, service=cred.service,
        signature_version="v4", presigned=True, payload_hash=payload_hash, signing_key=key,
        seed_signature=signature, amz_date=amz_date, scope=cred.scope,
        security_token=_single(params, "X-Amz-Security-Token"))


async def authenticate(req: SignedRequest, lookup_secret: SecretLookup, now: datetime,
                       served_regions: Collection[str], *,
                       body_sha256: str | None = None) -> AuthResult | None:
    """Verify ``req``'s signature; None when the request carries no signature at all.

    ``lookup_secret(access_key_id)`` returns the secret or None for an unknown key; it may raise
    ``AccessKeyDisabled`` (or any AuthError) itself. ``served_regions`` should be ordered: its
    first region is reported as the expected one. ``body_sha256`` (hex) is the hash of a fully
    read body: required for non-S3 requests with a body; for S3 it is optional and, when given,
    checked against x-amz-content-sha256.
    """
    now = as_utc(now)
    auth_values = header_values(req.headers, "authorization")
    params = query_params(req.raw_query)
    v4_query = any(name in params for name in ("X-Amz-Algorithm", "X-Amz-Credential",
                                               "X-Amz-Signature"))
    v2_query = "Signature" in params or "AWSAccessKeyId" in params
    if auth_values:
        value = auth_values[0].strip()
        if v4_query or v2_query:
            raise InvalidAuthArgument(_ONLY_ONE, "Authorization", value)
        if len(auth_values) > 1:
            raise AuthorizationHeaderMalformed(
                _HEADER_PREFIX + "more than one Authorization header was sent.")
        if value.startswith(ALGORITHM + " "):
            return await authenticate_header_v4(req, value, lookup_secret, now, served_regions,
                                                body_sha256)
        if value.startswith("AWS "):
            return await sigv2.authenticate_header(req, value, lookup_secret, now)
        raise InvalidAuthArgument("Unsupported Authorization Type", "Authorization", value)
    if v4_query and v2_query:
        raise InvalidAuthArgument(_ONLY_ONE, "X-Amz-Algorithm",
                                  (params.get("X-Amz-Algorithm") or [""])[0])
    if v4_query:
        return await authenticate_presigned_v4(req, params, lookup_secret, now, served_regions,
                                               body_sha256)
    if v2_query:
        return await sigv2.authenticate_query(req, params, lookup_secret, now)
    return None
