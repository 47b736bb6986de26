"""KMS's errors: one class per AWS error code (the JSON protocol's ``__type``), raised where the
fault is found and rendered by the gateway (any exception with ``code`` and ``status``). S3's
SSE-KMS receives the same classes from ``kms_api.data_keys``."""
from __future__ import annotations


class KMSError(Exception):
    code = "KMSInternalException"
    status = 500
    message = "An internal error occurred."

    def __init__(self, message: str | None = None) -> None:
        self.message = message or type(self).message
        self.extra: dict[str, object] = {}
        super().__init__(self.message)


def _error(code: str, message: str, status: int = 400) -> type[KMSError]:
    return type(code, (KMSError,), {"code": code, "status": status, "message": message})


KMSInternalException = _error("KMSInternalException", "An internal error occurred.", 500)
ValidationException = _error("ValidationException", "The request is not valid.")
NotFoundException = _error("NotFoundException", "The specified entity or resource could not be found.")
InvalidArnException = _error("InvalidArnException", "The ARN is not valid.")
AccessDeniedException = _error("AccessDeniedException", "You are not authorized to perform this operation.")
DisabledException = _error("DisabledException", "The KMS key is disabled.")
KMSInvalidStateException = _error("KMSInvalidStateException",
                                  "The state of the KMS key is not valid for this request.")
InvalidCiphertextException = _error("InvalidCiphertextException",
                                    "The ciphertext or encryption context is not valid.")
IncorrectKeyException = _error("IncorrectKeyException",
                               "The KMS key specified is not the key that was used to encrypt the ciphertext.")
InvalidKeyUsageException = _error("InvalidKeyUsageException", "The key usage is not valid for this request.")
AlreadyExistsException = _error("AlreadyExistsException", "The resource already exists.")
InvalidAliasNameException = _error("InvalidAliasNameException", "The alias name is not valid.")
NotAuthorizedException = _error("NotAuthorizedException", "You are not authorized to perform this operation.")
InvalidMarkerException = _error("InvalidMarkerException", "The marker is not valid.")
LimitExceededException = _error("LimitExceededException", "A limit was exceeded.")
TagException = _error("TagException", "The tags are not valid.")
MalformedPolicyDocumentException = _error("MalformedPolicyDocumentException", "The key policy is malformed.")
UnsupportedOperationException = _error("UnsupportedOperationException",
                                       "The requested operation is not supported.")
DryRunOperationException = _error("DryRunOperationException",
                                  "The request would have succeeded, but the DryRun option is set.", 412)
InvalidGrantTokenException = _error("InvalidGrantTokenException", "The grant token is not valid.")
CustomKeyStoreNotFoundException = _error("CustomKeyStoreNotFoundException",
                                         "The specified custom key store does not exist.")
