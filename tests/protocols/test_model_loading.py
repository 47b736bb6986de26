"""How the gateway loads botocore's service models (gateway.protocols.models): every shape,
member, trait and constraint of botocore's own model, without the documentation strings and in
plain dicts; one copy per process, shared with the API packages that read a model themselves;
and a server process that imports the application imports neither botocore's session machinery
nor PostgreSQL's driver, nor EC2's package, which only the leader imports (what a worker does
not use is not in its memory)."""
from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import botocore.session
import pytest

from gateway.protocols import models
from gateway.services import PROTOCOLS
from tests.conftest import REPO


def _without_documentation(value):
    if isinstance(value, dict):
        return {k: _without_documentation(v) for k, v in value.items()
                if not (k in ("documentation", "documentationUrl") and isinstance(v, str))}
    if isinstance(value, list):
        return [_without_documentation(v) for v in value]
    return value


def _dict_types(value, found: set) -> set:
    if isinstance(value, dict):
        found.add(type(value))
        for v in value.values():
            _dict_types(v, found)
    elif isinstance(value, list):
        for v in value:
            _dict_types(v, found)
    return found


@pytest.mark.parametrize("service", sorted({model for model, _ in PROTOCOLS.values()}))
def test_a_served_model_is_botocores_without_its_documentation(service):
    ours = models.service_model(service)
    theirs = botocore.session.get_session().get_service_model(service)
    assert ours.api_version == theirs.api_version
    assert ours._service_description == _without_documentation(theirs._service_description)
    assert not list(_walk_keys(ours._service_description))
    assert _dict_types(ours._service_description, set()) == {dict}     # no OrderedDict
    assert service in models.loaded_models()


def _walk_keys(value):
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(v, str) and k == "documentation":
                yield k
            yield from _walk_keys(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_keys(v)


def test_a_member_named_documentation_is_kept():
    pairs = [("documentation", "text"), ("documentationUrl", "https://x"),
             ("members", OrderedDict())]
    assert models._without_documentation(pairs) == {"members": {}}
    member = [("documentation", {"shape": "String"}), ("shape", "S")]
    assert models._without_documentation(member) == {"documentation": {"shape": "String"}, "shape": "S"}


def test_sdk_extras_are_merged():
    """S3's ``Expires`` is a timestamp in the model a client uses (service-2.sdk-extras.json)."""
    expires = models.service_model("s3").shape_for("GetObjectOutput").members["Expires"]
    assert expires.type_name == "timestamp"


def test_the_api_packages_read_the_gateways_model():
    from ec2_api import launch_templates
    from gateway.registry import default_services
    from kms_api import operations as kms
    from s3_api import router
    default_services()["ec2"].load_operations()     # EC2's package: imported by its first use
    assert router._model() is models.service_model("s3")
    assert kms._model() is models.service_model("kms")
    assert launch_templates._model() is models.service_model("ec2")


def test_the_application_imports_no_session_machinery_nor_postgres_driver():
    code = ("import sys; import gateway.app; from gateway.registry import default_services, preload_s3;"
            " default_services(); preload_s3();"
            " print(sorted(m for m in ('botocore.session', 'psycopg', 'storage.postgres', 'ec2_api')"
            " if m in sys.modules));"
            " from gateway.protocols.models import loaded_models; print(loaded_models())")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                         check=True, timeout=120).stdout.split("\n")
    assert out[0] == "[]"
    assert out[1] == "['s3']"       # S3's, preloaded; no other service's until it is asked for


def test_json_target_prefixes_are_the_models():
    """An unsigned JSON request finds its service without loading any model."""
    from gateway.services import JSON_TARGET_PREFIXES
    json_services = {name: model for name, (model, protocol) in PROTOCOLS.items() if protocol == "json"}
    assert JSON_TARGET_PREFIXES == {models.service_model(model).metadata["targetPrefix"]: name
                                    for name, model in json_services.items()}
