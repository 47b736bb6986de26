"""S3's errors: one class per AWS error code, raised where the fault is found.

The gateway renders any ``S3Error`` as S3's ``<Error>`` document with the class's code and status,
the message, and ``extra`` as further elements (BucketName, Key, Resource, Condition ...);
``headers`` are response headers the error carries (InvalidRange's ``Content-Range``).
"""
from __future__ import annotations


class S3Error(Exception):
    code = "InternalError"
    status = 500
    message = "We encountered an internal error. Please try again."
    headers: dict[str, str] = {}

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

# --- buckets -----------------------------------------------------------------------------------
BucketAlreadyExists = _error(
    "BucketAlreadyExists", 409,
    "The requested bucket name is not available. The bucket namespace is shared by all users of"
    " the system. Please select a different name and try again.")
BucketAlreadyOwnedByYou = _error(
    "BucketAlreadyOwnedByYou", 409,
    "Your previous request to create the named bucket succeeded and you already own it.")
BucketNotEmpty = _error("BucketNotEmpty", 409, "The bucket you tried to delete is not empty")
InvalidBucketName = _error("InvalidBucketName", 400, "The specified bucket is not valid.")
IllegalLocationConstraintException = _error(
    "IllegalLocationConstraintException", 400,
    "The location constraint is incompatible for the region specific endpoint this request was"
    " sent to.")
InvalidLocationConstraint = _error("InvalidLocationConstraint", 400,
                                   "The specified location-constraint is not valid")

AccessControlListNotSupported = _error("AccessControlListNotSupported", 400,
                                      "The bucket does not allow ACLs")
InvalidBucketAclWithObjectOwnership = _error(
    "InvalidBucketAclWithObjectOwnership", 400,
    "Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")

# --- bucket and object configurations Nimbo does not keep: "there is none" ------------------
NoSuchBucketPolicy = _error("NoSuchBucketPolicy", 404, "The bucket policy does not exist")
NoSuchCORSConfiguration = _error("NoSuchCORSConfiguration", 404,
                                 "The CORS configuration does not exist")
NoSuchLifecycleConfiguration = _error("NoSuchLifecycleConfiguration", 404,
                                      "The lifecycle configuration does not exist")
NoSuchWebsiteConfiguration = _error("NoSuchWebsiteConfiguration", 404,
                                    "The specified bucket does not have a website configuration")
NoSuchTagSet = _error("NoSuchTagSet", 404, "The TagSet does not exist")
ObjectLockConfigurationNotFoundError = _error(
    "ObjectLockConfigurationNotFoundError", 404,
    "Object Lock configuration does not exist for this bucket")

InvalidBucketState = _error("InvalidBucketState", 409,
                            "The request is not valid with the current state of the bucket.")
InvalidTag = _error("InvalidTag", 400, "The TagSet you have provided is invalid.")
NoSuchObjectLockConfiguration = _error("NoSuchObjectLockConfiguration", 404,
                                       "The specified object does not have a ObjectLock"
                                       " configuration")
InvalidRetentionPeriod = _error("InvalidRetentionPeriod", 400,
                                "Default retention period must be a positive integer value.")

# --- objects -----------------------------------------------------------------------------------
NoSuchVersion = _error("NoSuchVersion", 404, "The specified version does not exist.")
KeyTooLongError = _error("KeyTooLongError", 400, "Your key is too long")
MetadataTooLarge = _error("MetadataTooLarge", 400,
                          "Your metadata headers exceed the maximum allowed metadata size.")
EntityTooLarge = _error("EntityTooLarge", 400,
                        "Your proposed upload exceeds the maximum allowed object size.")
EntityTooSmall = _error("EntityTooSmall", 400,
                        "Your proposed upload is smaller than the minimum allowed object size.")
BadDigest = _error("BadDigest", 400, "The Content-MD5 you specified did not match what we received.")
InvalidDigest = _error("InvalidDigest", 400, "The Content-MD5 you specified is not valid.")
XAmzContentSHA256Mismatch = _error(
    "XAmzContentSHA256Mismatch", 400,
    "The provided 'x-amz-content-sha256' header does not match what was computed.")
IncompleteBody = _error("IncompleteBody", 400,
                        "You did not provide the number of bytes specified by the Content-Length"
                        " HTTP header")
MissingContentLength = _error("MissingContentLength", 411,
                              "You must provide the Content-Length HTTP header.")
InvalidRange = _error("InvalidRange", 416, "The requested range is not satisfiable")
InvalidPartNumber = _error("InvalidPartNumber", 416, "The requested partnumber is not satisfiable")
PreconditionFailed = _error("PreconditionFailed", 412,
                            "At least one of the pre-conditions you specified did not hold")
ConditionalRequestConflict = _error(
    "ConditionalRequestConflict", 409,
    "A conflicting operation occurred. If using PutObject you can retry the request. If using"
    " multipart upload you should initiate another CompleteMultipartUpload request or"
    " re-initiate the multipart upload.")
InvalidStorageClass = _error("InvalidStorageClass", 400,
                             "The storage class you specified is not valid")
MalformedXML = _error("MalformedXML", 400,
                      "The XML you provided was not well-formed or did not validate against our"
                      " published schema")
InvalidToken = _error("InvalidToken", 400, "The provided token is malformed or otherwise invalid.")

# --- server-side encryption (s3_api.encryption) ----------------------------------------------
InvalidEncryptionAlgorithmError = _error(
    "InvalidEncryptionAlgorithmError", 400,
    "The Encryption request you specified is not valid. Supported value: AES256.")


class NotModified(S3Error):
    """304: the gateway renders a bare status line, with the ``ETag`` and ``Last-Modified`` of
    ``extra`` as headers, and no body."""

    code = "NotModified"
    status = 304
    message = "Not Modified"


# --- POST Object (browser-based uploads) ------------------------------------------------------
MalformedPOSTRequest = _error("MalformedPOSTRequest", 400,
                              "The body of your POST request is not well-formed"
                              " multipart/form-data.")
MaxPostPreDataLengthExceededError = _error(
    "MaxPostPreDataLengthExceededError", 400,
    "Your POST request fields preceeding the upload file was too large.")

# --- multipart ---------------------------------------------------------------------------------
NoSuchUpload = _error("NoSuchUpload", 404,
                      "The specified upload does not exist. The upload ID may be invalid, or the"
                      " upload may have been aborted or completed.")
InvalidPart = _error("InvalidPart", 400,
                     "One or more of the specified parts could not be found.  The part may not have"
                     " been uploaded, or the specified entity tag may not match the part's entity"
                     " tag.")
InvalidPartOrder = _error("InvalidPartOrder", 400,
                          "The list of parts was not in ascending order. The parts list must be"
                          " specified in order by part number.")

# --- the server --------------------------------------------------------------------------------
# a full disk is storage.space.StorageFull, rendered as ServiceUnavailable by gateway.errors
ServiceUnavailable = _error("ServiceUnavailable", 503, "Please reduce your request rate.")
InternalError = _error("InternalError", 500,
                       "We encountered an internal error. Please try again.")
