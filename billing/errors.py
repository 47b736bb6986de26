"""Billing's errors (Cost Explorer ``ce`` and Cost and Usage Report ``cur``): one class per AWS
error code, raised where the fault is found.

The gateway renders any ``BillingError`` as the JSON protocol's error document
(``{"__type": code, "message": ...}``) with the class's code and HTTP status. Cost Explorer
answers bad input with ``ValidationException`` although its botocore model does not list it
(AWS's own service does: "Start date (and hour) should be before end date (and hour)").
"""
from __future__ import annotations


class BillingError(Exception):
    code = "InternalErrorException"
    status = 500
    message = "An error on the server occurred during the processing of your request."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = message or type(self).message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(self.message)


def _error(code: str, status: int, message: str) -> type[BillingError]:
    return type(code, (BillingError,), {"code": code, "status": status, "message": message})


# Both services
ValidationException = _error("ValidationException", 400,
                             "The input fails to satisfy the constraints specified by an AWS service.")
LimitExceededException = _error("LimitExceededException", 400,
                                "You made too many calls in a short period of time. Try again later.")
AccessDeniedException = _error("AccessDeniedException", 400, "You are not authorized to perform this action.")

# Cost Explorer (ce)
DataUnavailableException = _error("DataUnavailableException", 400, "The requested data is unavailable.")
InvalidNextTokenException = _error("InvalidNextTokenException", 400,
                                   "The pagination token is invalid. Try again without a pagination token.")
RequestChangedException = _error("RequestChangedException", 400,
                                 "Your request parameters changed between pages. Try again with the old "
                                 "parameters or without a pagination token.")
BillExpirationException = _error("BillExpirationException", 400,
                                 "The requested report expired. Update the date interval and try again.")

# Cost and Usage Report definitions (cur)
DuplicateReportNameException = _error("DuplicateReportNameException", 400,
                                      "A report with the specified name already exists in the account.")
ReportLimitReachedException = _error("ReportLimitReachedException", 400,
                                     "This account already has five reports defined.")
ResourceNotFoundException = _error("ResourceNotFoundException", 400,
                                   "The specified report (ReportName) in the request doesn't exist.")
InternalErrorException = _error("InternalErrorException", 500,
                                "An error on the server occurred during the processing of your request. "
                                "Try again later.")

# Data Exports (bcm-data-exports)
ServiceQuotaExceededException = _error("ServiceQuotaExceededException", 400,
                                       "You've reached the limit on the number of resources you can create.")
