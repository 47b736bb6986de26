"""Which S3 operation a request is, from botocore's model rather than a hand-written table.

Every operation's ``requestUri`` gives its method, its shape (``/``, ``/{Bucket}``,
``/{Bucket}/{Key+}``) and the query keys that must be present (``?uploads``, ``?list-type=2``);
required query-string members (``uploadId``, ``partNumber``) must be present too, and for
operations whose URI names no sub-resource, so must their required headers (CopyObject's
``x-amz-copy-source``). Among the operations a request satisfies, the most specific wins.
An operation S3 has and Nimbo does not implement answers ``NotImplemented``; a method no
operation of that shape accepts answers ``MethodNotAllowed``.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Callable

from multidict import CIMultiDict, CIMultiDictProxy

from s3_api.errors import MethodNotAllowed, NotImplementedOperation, PreconditionFailed

# S3 Express / Object Lambda operations, served on other endpoints, never routed here.
_EXCLUDED = {"CreateSession", "ListDirectoryBuckets", "WriteGetObjectResponse"}


@dataclass(frozen=True)
class Route:
    operation: str
    method: str
    shape: str                                   # "service" | "bucket" | "object"
    query: tuple[tuple[str, str | None], ...]    # (key, required value or None)
    headers: tuple[str, ...]                     # lower-case header names
    deprecated: bool

    @property
    def weight(self) -> int:
        return len(self.query) + len(self.headers)

    def matches(self, query, headers) -> bool:
        for name, value in self.query:
            if name not in query:
                return False
            if value is not None and query.get(name) != value:
                return False
        return all(h in headers for h in self.headers)


def _parse_uri(uri: str) -> tuple[str, tuple[tuple[str, str | None], ...]]:
    path, _, query = uri.partition("?")
    if "{Key+}" in path:
        shape = "object"
    elif "{Bucket}" in path:
        shape = "bucket"
    else:
        shape = "service"
    literals = []
    for item in filter(None, query.split("&")):
        name, sep, value = item.partition("=")
        literals.append((name, value if sep else None))
    return shape, tuple(literals)


_service_model: Callable[[str], Any] | None = None


def use_models(service_model: Callable[[str], Any]) -> None:
    """Where S3's model comes from: the gateway's loader (``gateway.registry``: one copy of the
    model per process, the one the codec serves with); botocore's own when none is given."""
    global _service_model
    if service_model is _service_model:
        return
    _service_model = service_model
    routes.cache_clear()
    _routing_names.cache_clear()
    _RESOLVED.clear()


def _model() -> Any:
    if _service_model is not None:
        return _service_model("s3")
    import botocore.session  # noqa: PLC0415
    return botocore.session.get_session().get_service_model("s3")


@functools.lru_cache(maxsize=1)
def routes() -> dict[tuple[str, str], list[Route]]:
    model = _model()
    table: dict[tuple[str, str], list[Route]] = {}
    for name in model.operation_names:
        if name in _EXCLUDED:
            continue
        op = model.operation_model(name)
        shape, literals = _parse_uri(op.http["requestUri"])
        query = list(literals)
        headers = []
        members = op.input_shape.members if op.input_shape else {}
        required = op.input_shape.required_members if op.input_shape else []
        for member in required:
            ser = members[member].serialization
            if ser.get("location") == "querystring":
                query.append((ser["name"], None))
            elif ser.get("location") == "header" and not literals:
                headers.append(ser["name"].lower())
        route = Route(name, op.http["method"], shape, tuple(query), tuple(headers),
                      bool(op.deprecated))
        table.setdefault((route.method, shape), []).append(route)
    for candidates in table.values():
        candidates.sort(key=lambda r: (-r.weight, r.deprecated, r.operation))
    return table


def _implemented() -> dict:
    from s3_api.operations import OPERATIONS  # late: operations imports the handlers
    return OPERATIONS


class _Headers:
    """Case-insensitive presence test over any headers mapping."""

    def __init__(self, headers) -> None:
        self._names = {k.lower() for k in headers.keys()} if headers is not None else set()

    def __contains__(self, name: str) -> bool:
        return name in self._names


@functools.lru_cache(maxsize=1)
def _routing_names() -> tuple[frozenset, frozenset, frozenset]:
    """The query parameter names any route looks at, those whose value it looks at too
    (``list-type=2``), and the header names: what else a request carries cannot change which
    operation it is."""
    query_names, valued, header_names = set(), set(), set()
    for candidates in routes().values():
        for route in candidates:
            query_names.update(name for name, _ in route.query)
            valued.update(name for name, value in route.query if value is not None)
            header_names.update(route.headers)
    return frozenset(query_names), frozenset(valued), frozenset(header_names)


_RESOLVED: dict[tuple, str] = {}


def resolve(method: str, bucket: str | None, key: str | None, query, headers) -> str:
    """The botocore operation name of a request (raises MethodNotAllowed / NotImplemented).

    The answer depends only on the method, the request's shape, the routing query parameters
    (names, and values where a route names one) and the presence of the routing headers; it is
    kept per such signature (a presigned GET's ``X-Amz-*`` parameters are not among them)."""
    query_names, valued, header_names = _routing_names()
    present = headers if isinstance(headers, (CIMultiDict, CIMultiDictProxy)) \
        else _Headers(headers)          # case-insensitive presence
    shape = "service" if not bucket else ("bucket" if not key else "object")
    signature = (method, shape,
                 tuple((name, query.get(name) if name in valued else None)
                       for name in query if name in query_names),
                 tuple(name for name in header_names if name in present))
    found = _RESOLVED.get(signature)
    if found is None:
        found = _resolve(method, shape, query, headers)
        if len(_RESOLVED) > 1024:    # signatures come from requests: keep the table bounded
            _RESOLVED.clear()
        _RESOLVED[signature] = found
    return found


def _resolve(method: str, shape: str, query, headers) -> str:
    method = method.upper()
    table = routes()
    candidates = table.get((method, shape))
    if not candidates:
        raise MethodNotAllowed(Method=method, ResourceType=shape.upper())
    names = _Headers(headers)
    for route in candidates:
        if route.matches(query, names):
            if route.operation not in _implemented():
                error = NotImplementedOperation(f"{route.operation} is not implemented by this server.")
                error.operation = route.operation     # named in the access log
                raise error
            return route.operation
    if method == "POST" and shape == "bucket":
        # POST Object forms never get here (the gateway serves multipart/form-data POSTs)
        raise PreconditionFailed(
            Condition="Bucket POST must be of the enclosure-type multipart/form-data")
    raise MethodNotAllowed(Method=method, ResourceType=shape.upper())
