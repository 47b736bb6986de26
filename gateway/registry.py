"""The services this endpoint serves, wired to their API packages."""
from __future__ import annotations

from typing import Any

from gateway import sts
from gateway.protocols.models import service_model
from gateway.services import PROTOCOLS, DeferredOperations, Service


def _service(name: str, operations: Any, open_state=None, close_state=None) -> Service:
    model, protocol = PROTOCOLS[name]
    return Service(name, model, protocol, operations, open_state, close_state)


def _ec2() -> Any:
    """EC2's API package, imported by its first use (the leader's start, or a request): ~6 MB
    that the workers that relay EC2 to the leader never hold."""
    import ec2_api.operations as ec2  # noqa: PLC0415
    from ec2_api import launch_templates  # noqa: PLC0415
    launch_templates.use_models(service_model)     # the gateway's EC2 model (as share_models)
    return ec2


async def _open_ec2(context: Any) -> Any:
    return await _ec2().open_state(context)


async def _close_ec2(state: Any) -> None:
    await _ec2().close_state(state)


def default_services() -> dict[str, Service]:
    import s3_api.operations as s3  # noqa: PLC0415
    import s3_api.service as s3_service  # noqa: PLC0415
    from billing import cost_explorer, data_exports, report_definitions  # noqa: PLC0415
    import ssm_api.operations as ssm  # noqa: PLC0415
    import kms_api.operations as kms  # noqa: PLC0415
    share_models()
    services = [
        _service("sts", sts.OPERATIONS),
        _service("ec2", DeferredOperations(lambda: _ec2().OPERATIONS), _open_ec2, _close_ec2),
        _service("s3", s3.OPERATIONS, s3_service.open_state, s3_service.close_state),
        _service("ce", cost_explorer.OPERATIONS),
        _service("cur", report_definitions.OPERATIONS),
        _service("bcm-data-exports", data_exports.OPERATIONS),
        _service("ssm", ssm.OPERATIONS, ssm.open_state),
        _service("kms", kms.OPERATIONS, kms.open_state, kms.close_state),
    ]
    return {service.name: service for service in services}


def share_models() -> None:
    """The API packages that read a botocore model themselves (S3's router, KMS's input checks,
    EC2's launch templates: when ``_ec2`` imports it) read the gateway's
    (``gateway.protocols.models``): one copy of each model per process, loaded on first use,
    instead of one more per package."""
    from kms_api import operations as kms  # noqa: PLC0415
    from s3_api import router  # noqa: PLC0415
    router.use_models(service_model)
    kms.use_models(service_model)


def preload_s3() -> None:
    """S3's model, its routing table and namespace: what every worker's first S3 request would
    otherwise build (~40 ms), built once by the parent of the workers (``gateway.workers``)."""
    from gateway.protocols.models import xml_namespace  # noqa: PLC0415
    from s3_api import router  # noqa: PLC0415
    xml_namespace(service_model("s3"))
    router.resolve("GET", "bucket", "key", {}, {})
