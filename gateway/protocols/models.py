"""Botocore service models, loaded once per process, on first use, without their documentation.

The models come from the botocore installed next to the gateway (the same JSON a client uses),
through botocore's own loader, so that the ``sdk-extras`` merges a client applies (e.g. S3's
``Expires`` timestamp) are applied too, and the newest API version is the one served.

What is kept of a model is what the codecs read: every shape, member, trait and constraint. Two
things are left out as the JSON is parsed, because no server reads them and they are most of a
model's memory (measured: EC2's model held 15 MB in a process, 7 MB without them):

- ``documentation`` (and ``documentationUrl``) strings: about two thirds of the JSON's text;
- ``OrderedDict``: botocore parses into ordered dicts (twice a plain dict's size); plain dicts
  keep the same order.

A model is loaded by the first request for its service in a process (``service_model``): a
worker that only ever serves S3 never holds EC2's model (the largest: ~50 ms to load), and one
that relays EC2 to the leader (``gateway.leader``) relays its bytes without decoding them. Only
S3's model, which every worker uses, is loaded by the parent before it forks the workers
(``gateway.workers``): what the parent holds is in every worker's resident set, needed or not.
A load is logged once per service and process (``loaded the ec2 model (45 ms)``).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections import Counter
from typing import Any

from botocore.loaders import JSONFileLoader, create_loader
from botocore.model import OperationModel, ServiceModel

log = logging.getLogger("nimbo.models")

_LOADED: set[str] = set()

# Keys of a model whose string values no server reads (a member *named* so is a dict: kept).
_DOCUMENTATION_KEYS = frozenset({"documentation", "documentationUrl"})


def _without_documentation(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    return {key: value for key, value in pairs
            if not (key in _DOCUMENTATION_KEYS and isinstance(value, str))}


class ModelFileLoader(JSONFileLoader):
    """botocore's JSON file loader, parsing into plain dicts without documentation strings."""

    def _load_file(self, full_path: str, open_method: Any) -> Any:
        # botocore's own method of that name, but for the hook (tests/protocols/test_model_loading
        # compares every served model with botocore's: a change of botocore's shows there)
        if not os.path.isfile(full_path):
            return None
        with open_method(full_path, "rb") as fp:
            payload = fp.read()
        return json.loads(payload, object_pairs_hook=_without_documentation)


@functools.lru_cache(maxsize=1)
def _loader() -> Any:
    """One loader per process (it caches what it loaded: the dicts the models are built on).
    Its search path is a session's: botocore's data, and ``AWS_DATA_PATH`` first if set."""
    loader = create_loader(os.environ.get("AWS_DATA_PATH"))
    loader.file_loader = ModelFileLoader()
    return loader


@functools.lru_cache(maxsize=None)
def service_model(name: str) -> ServiceModel:
    """The botocore model of service ``name`` ('ec2', 's3', 'sts', 'ce', ...), loaded by the
    first call in this process."""
    started = time.monotonic()
    model = ServiceModel(_loader().load_service_model(name, "service-2"), service_name=name)
    _LOADED.add(name)
    log.info("loaded the %s model (%.0f ms)", name, (time.monotonic() - started) * 1000)
    return model


def loaded_models() -> list[str]:
    """The services whose models this process has loaded (for tests and diagnostics)."""
    return sorted(_LOADED)


def operation(service: str, op_name: str) -> OperationModel:
    """The model of operation ``op_name`` (e.g. 'RunInstances') of ``service``.

    Raises ``botocore.exceptions.OperationNotFoundError`` for unknown names.
    """
    return service_model(service).operation_model(op_name)


def protocol(service: str) -> str:
    """The wire protocol the model declares: 'ec2', 'query', 'rest-xml', 'json'."""
    return service_model(service).protocol


@functools.lru_cache(maxsize=None)
def xml_namespace(model: ServiceModel) -> str | None:
    """The XML namespace of a service's responses.

    ``metadata.xmlNamespace`` when the model has it (EC2, STS).  S3's model
    has none at service level but puts its namespace on every XML request
    payload; the most common of those is the service's namespace.
    """
    ns = model.metadata.get('xmlNamespace')
    if ns:
        return ns
    seen: Counter[str] = Counter()
    for op_name in model.operation_names:
        shape = model.operation_model(op_name).input_shape
        if shape is None:
            continue
        for member in shape.members.values():
            uri = namespace_uri(member.serialization.get('xmlNamespace'))
            if uri:
                seen[uri] += 1
    return seen.most_common(1)[0][0] if seen else None


def namespace_uri(trait: object) -> str | None:
    """The URI of an ``xmlNamespace`` trait (a string or ``{uri, prefix}``)."""
    if isinstance(trait, str):
        return trait
    if isinstance(trait, dict):
        return trait.get('uri')
    return None
