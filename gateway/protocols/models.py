"""Botocore service models, loaded once per process.

The models come from the botocore installed next to the gateway (the same
JSON a client uses), through a botocore session so that the ``sdk-extras``
merges a client applies (e.g. S3's ``Expires`` timestamp) are applied too.
"""

from __future__ import annotations

import functools
from collections import Counter

import botocore.session
from botocore.model import OperationModel, ServiceModel


@functools.lru_cache(maxsize=1)
def _session() -> botocore.session.Session:
    return botocore.session.get_session()


@functools.lru_cache(maxsize=None)
def service_model(name: str) -> ServiceModel:
    """The botocore model of service ``name`` ('ec2', 's3', 'sts', 'ce', ...)."""
    return _session().get_service_model(name)


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
