"""Every SSM action Nimbo implements, by its botocore operation name, and the service's state
(``open_state`` migrates the parameter tables; the state itself holds nothing)."""
from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from ssm_api import parameters, tagging
from storage import parameters as parameter_store

OPERATIONS = {
    "PutParameter": parameters.put_parameter,
    "GetParameter": parameters.get_parameter,
    "GetParameters": parameters.get_parameters,
    "GetParametersByPath": parameters.get_parameters_by_path,
    "DescribeParameters": parameters.describe_parameters,
    "GetParameterHistory": parameters.get_parameter_history,
    "LabelParameterVersion": parameters.label_parameter_version,
    "DeleteParameter": parameters.delete_parameter,
    "DeleteParameters": parameters.delete_parameters,
    "AddTagsToResource": tagging.add_tags_to_resource,
    "RemoveTagsFromResource": tagging.remove_tags_from_resource,
    "ListTagsForResource": tagging.list_tags_for_resource,
}


async def open_state(app: Any) -> SimpleNamespace:
    await app.db.migrate(parameter_store.SCHEMA)
    return SimpleNamespace()
