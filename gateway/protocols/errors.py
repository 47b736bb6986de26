"""Typed errors raised by the protocol decoders for bad client input.

Every error carries the AWS error ``code``, a human ``message``, the HTTP
``status`` and, for S3, ``extra`` elements rendered inside ``<Error>`` (for
instance ``ArgumentName``/``ArgumentValue`` for ``InvalidArgument``).

The decoders never let a Python exception escape for bad input: every
problem with what the client sent becomes one of these classes.

Which code a decoder uses depends on the wire protocol, as AWS does it:

=========  =======================  ======================  =================
protocol   required member missing  value of the wrong type  unreadable body
=========  =======================  ======================  =================
ec2        MissingParameter         InvalidParameterValue    (form, n/a)
query      ValidationError          ValidationError          (form, n/a)
json       ValidationException      SerializationException   SerializationException
rest-xml   InvalidRequest (header,  InvalidArgument (header, MalformedXML
           query, uri) /            query) / MalformedXML
           MalformedXML (XML body)  (XML body)
=========  =======================  ======================  =================

``UnknownParameter`` (EC2) is only raised when a decoder runs in strict mode.
"""

from __future__ import annotations

from typing import Any


class ProtocolError(Exception):
    """Base class: a request the codec refuses, with its AWS error code."""

    code = 'InvalidRequest'
    status = 400

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.extra: dict[str, Any] = dict(extra or {})

    @property
    def sender_fault(self) -> bool:
        """True for client errors (query ``<Type>Sender</Type>``)."""
        return self.status < 500

    def __repr__(self) -> str:
        return f'{type(self).__name__}({self.code!r}, {self.message!r}, status={self.status})'


# --- EC2 -----------------------------------------------------------------

class MissingParameter(ProtocolError):
    """EC2 (and older query services): a required parameter is absent."""

    code = 'MissingParameter'


class InvalidParameterValue(ProtocolError):
    """EC2: a parameter's value cannot be read as its modelled type."""

    code = 'InvalidParameterValue'


class UnknownParameter(ProtocolError):
    """EC2 in strict mode: a parameter the model does not know."""

    code = 'UnknownParameter'


class InvalidQueryParameter(ProtocolError):
    """Query string malformed or not following AWS conventions."""

    code = 'InvalidQueryParameter'


# --- query (STS, IAM: Coral services) ------------------------------------

class ValidationError(ProtocolError):
    """Query protocol (STS, IAM): missing or malformed member."""

    code = 'ValidationError'


# --- json (Cost Explorer, CUR) -------------------------------------------

class SerializationException(ProtocolError):
    """JSON protocol: body is not JSON, or a value has the wrong JSON type."""

    code = 'SerializationException'


class ValidationException(ProtocolError):
    """JSON protocol: a required member is missing."""

    code = 'ValidationException'


# --- rest-xml (S3) -------------------------------------------------------

class MalformedXML(ProtocolError):
    """S3: body not well-formed XML, or not matching the operation's schema."""

    code = 'MalformedXML'

    def __init__(self, message: str | None = None, **kw: Any) -> None:
        super().__init__(
            message
            or 'The XML you provided was not well-formed or did not validate '
            'against our published schema',
            **kw,
        )


class InvalidArgument(ProtocolError):
    """S3: a header or query parameter has a value of the wrong type."""

    code = 'InvalidArgument'


class InvalidRequest(ProtocolError):
    """S3: a required header, query parameter or URI label is absent."""

    code = 'InvalidRequest'


# --- per-protocol factories ----------------------------------------------

def missing_member(protocol: str, wire_name: str) -> ProtocolError:
    """The error for a required member absent from the request."""
    if protocol == 'ec2':
        return MissingParameter(f'The request must contain the parameter {wire_name}')
    if protocol == 'query':
        return ValidationError(
            f"1 validation error detected: Value null at '{wire_name}' failed to "
            'satisfy constraint: Member must not be null'
        )
    if protocol == 'json':
        return ValidationException(
            f"1 validation error detected: Value null at '{wire_name}' failed to "
            'satisfy constraint: Member must not be null'
        )
    if protocol == 'rest-xml-body':
        return MalformedXML()
    return InvalidRequest(f'Missing required parameter for this request: {wire_name}')


def invalid_value(protocol: str, wire_name: str, value: Any, type_name: str) -> ProtocolError:
    """The error for a value that cannot be read as its modelled type."""
    shown = _shorten(value)
    if protocol == 'ec2':
        return InvalidParameterValue(
            f'Value ({shown}) for parameter {wire_name} is invalid. '
            f'Expected a value of type {type_name}.'
        )
    if protocol == 'query':
        return ValidationError(
            f"1 validation error detected: Value '{shown}' at '{wire_name}' failed to "
            f'satisfy constraint: Member must be a valid {type_name}'
        )
    if protocol == 'json':
        return SerializationException(
            f"Value '{shown}' at '{wire_name}' cannot be converted to {type_name}"
        )
    if protocol == 'rest-xml-body':
        return MalformedXML()
    return InvalidArgument(
        f'Invalid value for {wire_name}: expected {type_name}',
        extra={'ArgumentName': wire_name, 'ArgumentValue': shown},
    )


def unknown_parameter(wire_name: str) -> ProtocolError:
    return UnknownParameter(f'The parameter {wire_name} is not recognized')


def _shorten(value: Any, limit: int = 200) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + '...'
