"""EC2's errors: one class per AWS error code, raised where the fault is found.

The gateway renders any ``EC2Error`` as EC2's ``<Response><Errors><Error>`` document. Codes with a
dot (``InvalidInstanceID.NotFound``) are made with ``ec2_error`` since a class name cannot hold one.
"""
from __future__ import annotations


class EC2Error(Exception):
    code = "InternalError"
    status = 500
    message = "An internal error has occurred"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or type(self).message
        self.extra: dict[str, object] = {}
        super().__init__(self.message)


def ec2_error(code: str, status: int = 400, message: str = "") -> type[EC2Error]:
    name = code.replace(".", "_")
    return type(name, (EC2Error,), {"code": code, "status": status, "message": message or code})


InvalidParameterValue = ec2_error("InvalidParameterValue")
InvalidParameterCombination = ec2_error("InvalidParameterCombination")
MissingParameter = ec2_error("MissingParameter")
UnsupportedOperation = ec2_error("UnsupportedOperation")
InvalidAction = ec2_error("InvalidAction")
DryRunOperation = ec2_error("DryRunOperation", 412,
                            "Request would have succeeded, but DryRun flag is set.")
