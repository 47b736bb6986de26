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
InvalidParameter = ec2_error("InvalidParameter")
IdempotentParameterMismatch = ec2_error(
    "IdempotentParameterMismatch", 400,
    "The client token you have provided is associated with a resource that is already deleted, "
    "or the parameters of the request differ from the original request.")
OperationNotPermitted = ec2_error("OperationNotPermitted")
IncorrectInstanceState = ec2_error("IncorrectInstanceState")
InsufficientInstanceCapacity = ec2_error(
    "InsufficientInstanceCapacity", 500,
    "We currently do not have sufficient capacity in the Availability Zone you requested.")
InstanceLimitExceeded = ec2_error("InstanceLimitExceeded")
InvalidInstanceIDNotFound = ec2_error("InvalidInstanceID.NotFound")
InvalidAMIIDNotFound = ec2_error("InvalidAMIID.NotFound")
InvalidAMIIDUnavailable = ec2_error("InvalidAMIID.Unavailable")
InvalidAMINameDuplicate = ec2_error("InvalidAMIName.Duplicate")
InvalidAMINameMalformed = ec2_error("InvalidAMIName.Malformed")
InvalidKeyPairNotFound = ec2_error("InvalidKeyPair.NotFound")
InvalidKeyPairDuplicate = ec2_error("InvalidKeyPair.Duplicate")
InvalidKeyFormat = ec2_error("InvalidKey.Format")
InvalidSubnetIDNotFound = ec2_error("InvalidSubnetID.NotFound")
InvalidVpcIDNotFound = ec2_error("InvalidVpcID.NotFound")
InvalidGroupNotFound = ec2_error("InvalidGroup.NotFound")
InvalidUserIDMalformed = ec2_error("InvalidUserID.Malformed")
TagLimitExceeded = ec2_error("TagLimitExceeded")
UnauthorizedOperation = ec2_error("UnauthorizedOperation", 403,
                                  "You are not authorized to perform this operation.")


def not_found(error: type[EC2Error], what: str, ids: list[str]) -> EC2Error:
    """EC2's wording for ids that do not exist: one id, or several listed."""
    if len(ids) == 1:
        return error(f"The {what} ID '{ids[0]}' does not exist")
    return error(f"The {what} IDs '{', '.join(ids)}' do not exist")


def check_dry_run(params: dict) -> None:
    """A permitted request with DryRun=true stops here, as EC2 answers it."""
    if params.get("DryRun"):
        raise DryRunOperation()
