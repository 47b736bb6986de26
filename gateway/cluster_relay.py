"""Relays between a cluster's gateways, authenticated: what the cluster's EC2 leader may believe.

A gateway that relays a request to the cluster's leader (``gateway.cluster``) reports what only it
saw: the client's address (``X-Nimbo-Forwarded-For``) and whether the client came over TLS
(``X-Nimbo-Forwarded-Proto``; SigV2 canonicalises the Host's default port by the scheme, the
console's cookie is Secure over TLS, the sign-in limit and the access log count the client). Those
headers are believed only when the request proves it came from a gateway of this cluster: an HMAC
(SHA-256) under the cluster's *relay key*, ``X-Nimbo-Relay-Signature``, over

    NIMBO-RELAY-1, method, raw path and query, X-Nimbo-Relay-Time (Unix seconds), the two
    forwarded values, and the SHA-256 of the headers that carry the client's own credentials and
    framing (Host, Authorization, X-Amz-Date, X-Amz-Content-Sha256, X-Amz-Security-Token,
    Cookie, Content-Type),

one per line, within ``MAX_SKEW_SECONDS`` of the leader's clock. Anything else (no signature, a
wrong one, an old one) is served as any client's request: the relay headers are ignored, never an
error (a client cannot tell a trusted relay from its own request by the answer). The body is not
in the HMAC: the leader checks the client's own signature as for any request (SigV4 covers the
body's hash; a console request carries its session cookie and CSRF token, which are in the
HMAC's headers). So a relay captured on the wire and replayed within the window allows what
replaying the client's request allows, and no more: keep the gateways' internal addresses on a
network of their own, as any cluster's back end (the relay is plain HTTP).

The relay key is derived from the master key (``storage.master_key``), which a cluster keeps beside
the objects in ``blob_dir``, so every gateway of the cluster has it and nobody else does:
HMAC-SHA256(master key, ``nimbo cluster relay key 1``). Gateways whose ``blob_dir`` differ have
different keys: their relays are served, untrusted (the leader logs it once).

Crash story: nothing here is persistent.
"""
from __future__ import annotations

import hashlib
import hmac
import logging
import time
from typing import Any, Mapping

from aiohttp import web

log = logging.getLogger("nimbo.cluster")

RELAY_TIME = "X-Nimbo-Relay-Time"
RELAY_SIGNATURE = "X-Nimbo-Relay-Signature"
NOT_LEADER = "X-Nimbo-Not-Leader"      # the answer of a gateway that does not lead (status 421)
HEADERS = (RELAY_TIME, RELAY_SIGNATURE)
MAX_SKEW_SECONDS = 300
TRUSTED = web.RequestKey("nimbo.cluster_relay", bool)   # the relay's headers verified
_COVERED = ("Host", "Authorization", "X-Amz-Date", "X-Amz-Content-Sha256", "X-Amz-Security-Token",
            "Cookie", "Content-Type")
_warned = False


def relay_key(config: Any) -> bytes:
    """The cluster's relay key, from the master key beside the objects (made if missing)."""
    from storage import master_key  # noqa: PLC0415
    key = master_key.load_or_create(master_key.key_dir(config))
    return hmac.new(key, b"nimbo cluster relay key 1", hashlib.sha256).digest()


def _string_to_sign(method: str, raw_path: str, when: str, forwarded_for: str, proto: str,
                    headers: Mapping[str, str]) -> bytes:
    covered = hashlib.sha256()
    for name in _COVERED:
        covered.update(f"{name.lower()}:{headers.get(name, '')}\n".encode("utf-8", "surrogateescape"))
    return "\n".join(("NIMBO-RELAY-1", method, raw_path, when, forwarded_for, proto,
                      covered.hexdigest())).encode("utf-8", "surrogateescape")


def sign(key: bytes, method: str, raw_path: str, headers: Mapping[str, str], forwarded_for: str,
         proto: str, now: float | None = None) -> dict[str, str]:
    """The relay headers for a request a gateway relays (``headers``: those it sends)."""
    when = str(int(time.time() if now is None else now))
    signature = hmac.new(key, _string_to_sign(method, raw_path, when, forwarded_for, proto, headers),
                         hashlib.sha256).hexdigest()
    return {RELAY_TIME: when, RELAY_SIGNATURE: signature}


def verify(key: bytes | None, method: str, raw_path: str, headers: Mapping[str, str],
           forwarded_for: str, proto: str, now: float | None = None) -> bool:
    """Whether the relay headers in ``headers`` are a gateway's of this cluster (see above)."""
    global _warned
    signature, when = headers.get(RELAY_SIGNATURE), headers.get(RELAY_TIME, "")
    if key is None or not signature or not when.isdigit():
        return False
    if abs((time.time() if now is None else now) - int(when)) > MAX_SKEW_SECONDS:
        return False
    expected = hmac.new(key, _string_to_sign(method, raw_path, when, forwarded_for, proto, headers),
                        hashlib.sha256).hexdigest()
    if hmac.compare_digest(expected, signature):
        return True
    if not _warned:
        _warned = True
        log.warning("a request carried a cluster relay signature that does not verify (another "
                    "blob_dir's master key, or not a gateway): served, its relay headers ignored")
    return False


def check(request: Any, key: bytes | None, forwarded_for_header: str, proto_header: str) -> None:
    """Mark ``request`` trusted (``request[TRUSTED]``) when its relay signature verifies."""
    headers = request.headers
    if verify(key, request.method, request.raw_path, headers,
              headers.get(forwarded_for_header, ""), headers.get(proto_header, "")):
        request[TRUSTED] = True


def trusted(request: Any) -> bool:
    try:
        return bool(request.get(TRUSTED))
    except AttributeError:
        return False
