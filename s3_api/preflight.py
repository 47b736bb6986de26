"""Cross-origin requests: the preflight ``OPTIONS`` and the ``Access-Control-*`` headers of actual
requests, from the bucket's CORS rules (``s3_api.cors``).

S3 answers every ``OPTIONS`` request as a CORS preflight, unsigned: a browser sends it without
credentials, and a signature on it (a presigned URL's) is not checked. The gateway asks
``is_preflight`` before it authenticates and answers with ``answer``'s headers (200, no body) or
the error it raises. In S3's order:

1. no ``Origin``: 400 BadRequest "Insufficient information. Origin request header needed.";
2. no such bucket: 403 AccessForbidden "CORSResponse: Bucket not found";
3. no CORS configuration: 403 AccessForbidden "CORSResponse: CORS is not enabled for this
   bucket.";
4. no ``Access-Control-Request-Method`` or not one of GET, PUT, HEAD, POST, DELETE: 400
   BadRequest "Invalid Access-Control-Request-Method: <value, or null>";
5. no rule allows the origin, method and requested headers: 403 AccessForbidden "CORSResponse:
   This CORS request is not allowed. ..." (S3's message, its spelling kept).

The 403s name the requested method (``OPTIONS`` when none was given) and the resource type
(``BUCKET``; ``OBJECT`` when rules were evaluated for a key). The key itself is not looked up.

An actual request (any other method) with an ``Origin`` header proceeds as it would without one;
when a rule matches, its response, successful or not, carries the ``Access-Control-*`` headers
and ``Vary`` (``response_headers``, computed before authentication so that a refused signature
is readable by the page too). Without ``Origin``, a configuration, or a matching rule, no CORS
header is added.
"""
from __future__ import annotations

from s3_api.cors import METHODS, allow_headers, matching_rule, requested_headers, rules_of
from s3_api.errors import S3Error

NOT_ALLOWED = ("CORSResponse: This CORS request is not allowed. This is usually because the"
               " evalution of Origin, request method / Access-Control-Request-Method or"
               " Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.")


class AccessForbidden(S3Error):
    code = "AccessForbidden"
    status = 403
    message = NOT_ALLOWED


class BadRequest(S3Error):
    code = "BadRequest"
    status = 400
    message = "Insufficient information. Origin request header needed."


def is_preflight(method: str) -> bool:
    """S3 answers an OPTIONS request, whatever it names, as a CORS preflight."""
    return method.upper() == "OPTIONS"


def answer(ctx, bucket: str | None, key: str | None) -> dict[str, str]:
    """The headers of a preflight's 200 answer, or S3's error (see the module's doc)."""
    headers = ctx.headers
    origin = headers.get("Origin")
    if not origin:
        raise BadRequest()
    asked = headers.get("Access-Control-Request-Method")
    method_element = asked if asked else "OPTIONS"
    store = ctx.state.store
    if not bucket or store.bucket(bucket) is None:
        raise AccessForbidden("CORSResponse: Bucket not found", Method=method_element,
                              ResourceType="BUCKET")
    ctx.bucket = bucket
    rules = rules_of(store, bucket)
    if rules is None:
        raise AccessForbidden("CORSResponse: CORS is not enabled for this bucket.",
                              Method=method_element, ResourceType="BUCKET")
    if asked not in METHODS:
        raise BadRequest("Invalid Access-Control-Request-Method:"
                         f" {asked if asked is not None else 'null'}")
    names = requested_headers(headers.get("Access-Control-Request-Headers"))
    rule = matching_rule(rules, origin, asked, names)
    if rule is None:
        raise AccessForbidden(NOT_ALLOWED, Method=asked,
                              ResourceType="OBJECT" if key else "BUCKET")
    return allow_headers(rule, origin, names)


def response_headers(state, bucket: str | None, method: str, headers) -> dict[str, str] | None:
    """The CORS headers of an actual request's response (None: no CORS headers)."""
    origin = headers.get("Origin")
    if not origin or not bucket or state is None:
        return None
    rules = rules_of(state.store, bucket)
    if not rules:
        return None
    asked = headers.get("Access-Control-Request-Method") or method.upper()
    names = requested_headers(headers.get("Access-Control-Request-Headers"))
    rule = matching_rule(rules, origin, asked, names)
    return allow_headers(rule, origin, names) if rule is not None else None
