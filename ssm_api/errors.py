"""SSM's errors: one class per AWS error code (the JSON protocol's ``__type``), raised where the
fault is found and rendered by the gateway (any exception with ``code`` and ``status``)."""
from __future__ import annotations


class SSMError(Exception):
    code = "InternalServerError"
    status = 500
    message = "An error occurred on the server side."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or type(self).message
        self.extra: dict[str, object] = {}
        super().__init__(self.message)


def _error(code: str, message: str, status: int = 400) -> type[SSMError]:
    return type(code, (SSMError,), {"code": code, "status": status, "message": message})


ValidationException = _error("ValidationException", "The request is not valid.")
ParameterNotFound = _error("ParameterNotFound", "Parameter not found.")
ParameterVersionNotFound = _error("ParameterVersionNotFound", "The specified parameter version was not found.")
ParameterAlreadyExists = _error("ParameterAlreadyExists", "The parameter already exists. To overwrite this "
                                "value, set the overwrite option in the request to true.")
ParameterMaxVersionLimitExceeded = _error("ParameterMaxVersionLimitExceeded",
                                          "The parameter exceeded the maximum number of allowed versions.")
ParameterPatternMismatchException = _error("ParameterPatternMismatchException",
                                           "The parameter value does not match the allowed pattern.")
InvalidAllowedPatternException = _error("InvalidAllowedPatternException", "The request doesn't meet the "
                                        "regular expression requirement.")
HierarchyLevelLimitExceededException = _error("HierarchyLevelLimitExceededException",
                                              "A hierarchy can have a maximum of 15 levels.")
UnsupportedParameterType = _error("UnsupportedParameterType", "The parameter type isn't supported.")
InvalidFilterKey = _error("InvalidFilterKey", "The specified key isn't valid.")
InvalidFilterOption = _error("InvalidFilterOption", "The specified filter option isn't valid.")
InvalidFilterValue = _error("InvalidFilterValue", "The filter value isn't valid.")
InvalidNextToken = _error("InvalidNextToken", "The specified token isn't valid.")
InvalidKeyId = _error("InvalidKeyId", "The query key ID isn't valid.")
AccessDeniedException = _error("AccessDeniedException", "You are not authorized to perform this action.")
ParameterVersionLabelLimitExceeded = _error("ParameterVersionLabelLimitExceeded",
                                            "A parameter version can have a maximum of ten labels.")
InvalidResourceType = _error("InvalidResourceType", "The resource type isn't valid.")
InvalidResourceId = _error("InvalidResourceId", "The resource ID isn't valid. Verify that you entered the correct ID "
                           "and try again.")
TooManyTagsError = _error("TooManyTagsError", "The Targets parameter includes too many tags. Remove one or more "
                          "tags and try the command again.")
