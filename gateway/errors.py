"""Errors that the gateway itself finds, and the one place where every error becomes a wire error.

Each API package has its own error base (``s3_api.errors.S3Error``, ``ec2_api.errors.EC2Error``,
``billing.errors.BillingError``); they all carry ``code``, ``status``, ``message`` and ``extra``.
``wire_error`` reduces any exception to that shape for the service the request was for; anything
unexpected becomes ``InternalError`` (500) and is logged with the request id by the caller.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from gateway.auth.errors import AuthError, service_error, service_message
from gateway.protocols.errors import ProtocolError
from storage.space import StorageFull, is_out_of_space


class GatewayError(Exception):
    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."

    def __init__(self, message: str | None = None, **extra: object) -> None:
        self.message = message or type(self).message
        self.extra = {k: v for k, v in extra.items() if v is not None}
        super().__init__(self.message)


def _error(name: str, code: str, status: int, message: str) -> type[GatewayError]:
    return type(name, (GatewayError,), {"code": code, "status": status, "message": message})


InvalidAction = _error("InvalidAction", "InvalidAction", 400, "The action is not valid for this web service.")
UnsupportedOperation = _error("UnsupportedOperation", "UnsupportedOperation", 400,
                              "The operation is not supported by this endpoint.")
UnknownOperationException = _error("UnknownOperationException", "UnknownOperationException", 400,
                                   "The requested operation is not recognized by the service.")
NotImplementedS3 = _error("NotImplementedS3", "NotImplemented", 501,
                          "A header you provided implies functionality that is not implemented.")
MaxMessageLengthExceeded = _error("MaxMessageLengthExceeded", "MaxMessageLengthExceeded", 400,
                                  "Your request was too big.")
InvalidRequest = _error("InvalidRequest", "InvalidRequest", 400, "Invalid request.")
IncompleteBody = _error("IncompleteBody", "IncompleteBody", 400,
                        "You did not provide the number of bytes specified by the Content-Length"
                        " HTTP header.")
InvalidURI = _error("InvalidURI", "InvalidURI", 400, "Couldn't parse the specified URI.")
XAmzContentSHA256Mismatch = _error("XAmzContentSHA256Mismatch", "XAmzContentSHA256Mismatch", 400,
                                   "The provided 'x-amz-content-sha256' header does not match what was computed.")
MalformedQueryString = _error("MalformedQueryString", "MalformedQueryString", 404,
                              "The query string contains a syntax error.")
EC2MissingAction = _error("EC2MissingAction", "MissingAction", 400, "The request must contain the parameter Action")


@dataclass
class WireError:
    code: str
    status: int
    message: str
    extra: dict = field(default_factory=dict)
    sender_fault: bool = True


def wire_error(exc: BaseException, service: str) -> WireError | None:
    """The AWS error for ``exc`` as ``service`` names it; None when it is not a known error."""
    if isinstance(exc, AuthError):
        code, status = service_error(exc, service)
        extra = dict(exc.extra) if service == "s3" else {}
        return WireError(code, status, service_message(exc, service), extra)
    if is_out_of_space(exc):
        return storage_full_error(exc)
    if isinstance(exc, ProtocolError):
        return WireError(exc.code, exc.status, exc.message, dict(getattr(exc, "extra", {}) or {}))
    code = getattr(exc, "code", None)
    status = getattr(exc, "status", None)
    if isinstance(code, str) and isinstance(status, int) and isinstance(exc, Exception):
        message = getattr(exc, "message", None) or str(exc)
        return WireError(code, status, message, dict(getattr(exc, "extra", {}) or {}), status < 500)
    return None


def storage_full_error(exc: BaseException) -> WireError:
    """A full disk (``storage.space.StorageFull``, ENOSPC, SQLITE_FULL), for every service:
    ServiceUnavailable (503), the code S3's and EC2's error lists give a server that cannot take
    the request now (clients may retry; it succeeds once space is freed)."""
    message = exc.message if isinstance(exc, StorageFull) else StorageFull().message
    return WireError("ServiceUnavailable", 503, message, sender_fault=False)


def internal_error() -> WireError:
    return WireError("InternalError", 500, "We encountered an internal error. Please try again.",
                     sender_fault=False)
