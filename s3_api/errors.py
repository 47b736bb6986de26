"""S3's errors: one class per AWS error code, raised where the fault is found.

The gateway renders any ``S3Error`` as S3's ``<Error>`` document with the class's code and status,
the message, and ``extra`` as further elements (BucketName, Key, Resource, Condition ...).
"""
from __future__ import annotations


class S3Error(Exception):
    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = message or type(self).message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(self.message)


def _error(code: str, status: int, message: str) -> type[S3Error]:
    return type(code, (S3Error,), {"code": code, "status": status, "message": message})


AccessDenied = _error("AccessDenied", 403, "Access Denied")
NoSuchBucket = _error("NoSuchBucket", 404, "The specified bucket does not exist")
NoSuchKey = _error("NoSuchKey", 404, "The specified key does not exist.")
MethodNotAllowed = _error("MethodNotAllowed", 405,
                          "The specified method is not allowed against this resource.")
NotImplementedOperation = _error("NotImplemented", 501,
                                 "A header you provided implies functionality that is not implemented")
InvalidArgument = _error("InvalidArgument", 400, "Invalid Argument")
InvalidRequest = _error("InvalidRequest", 400, "Invalid Request")
