"""Amazon S3's IAM actions and condition keys, as the Service Authorization Reference lists
them ("Actions, resources, and condition keys for Amazon S3"), with what each applies to.

Used by ``access.policy`` to validate bucket policies the way PutBucketPolicy does:

- an action name that S3 does not have is "Policy has invalid action";
- an action that applies to neither the bucket nor its objects named in a statement's
  resources is "Action does not apply to any resource(s) in statement";
- a condition key S3 does not know is "Policy has an invalid condition key", and an S3 key
  that does not apply to every (non-wildcard) action of its statement is "Conditions do not
  apply to combination of actions and resources in statement".
"""
from __future__ import annotations

# Resource types: "bucket" (arn:aws:s3:::bucket), "object" (arn:aws:s3:::bucket/key), and
# "other" (the account, access points, jobs, Storage Lens...: never a bucket policy's resource).
_OBJECT = """
AbortMultipartUpload BypassGovernanceRetention DeleteObject DeleteObjectTagging
DeleteObjectVersion DeleteObjectVersionTagging GetObject GetObjectAcl GetObjectAttributes
GetObjectLegalHold GetObjectRetention GetObjectTagging GetObjectTorrent GetObjectVersion
GetObjectVersionAcl GetObjectVersionAttributes GetObjectVersionForReplication
GetObjectVersionTagging GetObjectVersionTorrent InitiateReplication ListMultipartUploadParts
ObjectOwnerOverrideToBucketOwner PutObject PutObjectAcl PutObjectLegalHold PutObjectRetention
PutObjectTagging PutObjectVersionAcl PutObjectVersionTagging ReplicateDelete ReplicateObject
ReplicateTags RestoreObject
"""
_BUCKET = """
CreateBucket CreateBucketMetadataTableConfiguration CreateBucketMetadataConfiguration
DeleteBucket DeleteBucketMetadataTableConfiguration DeleteBucketMetadataConfiguration
DeleteBucketPolicy DeleteBucketWebsite
GetAccelerateConfiguration GetAnalyticsConfiguration GetBucketAbac GetBucketAcl GetBucketCORS
GetBucketLocation GetBucketLogging GetBucketMetadataTableConfiguration
GetBucketMetadataConfiguration GetBucketNotification GetBucketObjectLockConfiguration
GetBucketOwnershipControls GetBucketPolicy GetBucketPolicyStatus GetBucketPublicAccessBlock
GetBucketRequestPayment GetBucketTagging GetBucketVersioning GetBucketWebsite
GetEncryptionConfiguration GetIntelligentTieringConfiguration GetInventoryConfiguration
GetLifecycleConfiguration GetMetricsConfiguration GetReplicationConfiguration ListBucket
ListBucketMultipartUploads ListBucketVersions PutAccelerateConfiguration
PutAnalyticsConfiguration PutBucketAbac PutBucketAcl PutBucketCORS PutBucketLogging
PutBucketNotification PutBucketObjectLockConfiguration PutBucketOwnershipControls
PutBucketPolicy PutBucketPublicAccessBlock PutBucketRequestPayment PutBucketTagging
PutBucketVersioning PutBucketWebsite PutEncryptionConfiguration
PutIntelligentTieringConfiguration PutInventoryConfiguration PutLifecycleConfiguration
PutMetricsConfiguration PutReplicationConfiguration UpdateBucketMetadataInventoryTableConfiguration
UpdateBucketMetadataJournalTableConfiguration
"""
_OTHER = """
AssociateAccessGrantsIdentityCenter CreateAccessGrant CreateAccessGrantsInstance
CreateAccessGrantsLocation CreateAccessPoint CreateAccessPointForObjectLambda CreateJob
CreateMultiRegionAccessPoint CreateStorageLensGroup DeleteAccessGrant DeleteAccessGrantsInstance
DeleteAccessGrantsInstanceResourcePolicy DeleteAccessGrantsLocation DeleteAccessPoint
DeleteAccessPointForObjectLambda DeleteAccessPointPolicy DeleteAccessPointPolicyForObjectLambda
DeleteJobTagging DeleteMultiRegionAccessPoint DeleteStorageLensConfiguration
DeleteStorageLensConfigurationTagging DeleteStorageLensGroup DescribeJob
DescribeMultiRegionAccessPointOperation DissociateAccessGrantsIdentityCenter GetAccessGrant
GetAccessGrantsInstance GetAccessGrantsInstanceForPrefix GetAccessGrantsInstanceResourcePolicy
GetAccessGrantsLocation GetAccessPoint GetAccessPointConfigurationForObjectLambda
GetAccessPointForObjectLambda GetAccessPointPolicy GetAccessPointPolicyForObjectLambda
GetAccessPointPolicyStatus GetAccessPointPolicyStatusForObjectLambda
GetAccountPublicAccessBlock GetDataAccess GetJobTagging GetMultiRegionAccessPoint
GetMultiRegionAccessPointPolicy GetMultiRegionAccessPointPolicyStatus
GetMultiRegionAccessPointRoutes GetStorageLensConfiguration GetStorageLensConfigurationTagging
GetStorageLensDashboard GetStorageLensGroup ListAccessGrants ListAccessGrantsInstances
ListAccessGrantsLocations ListAccessPoints ListAccessPointsForObjectLambda ListAllMyBuckets
ListCallerAccessGrants ListJobs ListMultiRegionAccessPoints ListStorageLensConfigurations
ListStorageLensGroups ListTagsForResource PutAccessGrantsInstanceResourcePolicy
PutAccessPointConfigurationForObjectLambda PutAccessPointPolicy
PutAccessPointPolicyForObjectLambda PutAccessPointPublicAccessBlock PutAccountPublicAccessBlock
PutJobTagging PutMultiRegionAccessPointPolicy PutStorageLensConfiguration
PutStorageLensConfigurationTagging SubmitMultiRegionAccessPointRoutes TagResource
UntagResource UpdateAccessGrantsLocation UpdateJobPriority UpdateJobStatus
UpdateStorageLensGroup
"""

ACTIONS: dict[str, str] = {}
for _kind, _names in (("object", _OBJECT), ("bucket", _BUCKET), ("other", _OTHER)):
    for _name in _names.split():
        ACTIONS[_name] = _kind

# lower-case action name (without "s3:") -> canonical name
_CANONICAL = {name.lower(): name for name in ACTIONS}


def canonical_action(name: str) -> str | None:
    """``s3:getobject`` -> ``GetObject``; None when S3 has no such action."""
    if not name.lower().startswith("s3:"):
        return None
    return _CANONICAL.get(name[3:].lower())


# ---- condition keys ----------------------------------------------------------------------------

def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


_LIST = _names("ListBucket ListBucketVersions")
_ACL_WRITE = _names("PutObject PutObjectAcl PutObjectVersionAcl PutBucketAcl CreateBucket")
_OBJECT_WRITE = _names("PutObject")
_VERSIONED = _names("""
DeleteObjectVersion DeleteObjectVersionTagging GetObjectVersion GetObjectVersionAcl
GetObjectVersionAttributes GetObjectVersionForReplication GetObjectVersionTagging
GetObjectVersionTorrent PutObjectVersionAcl PutObjectVersionTagging
""")
_EXISTING_TAG = _names("""
GetObject GetObjectVersion GetObjectAcl GetObjectVersionAcl PutObjectAcl PutObjectVersionAcl
GetObjectTagging GetObjectVersionTagging PutObjectTagging PutObjectVersionTagging
DeleteObjectTagging DeleteObjectVersionTagging GetObjectAttributes GetObjectVersionAttributes
""")
_REQUEST_TAG = _names("PutObject PutObjectTagging PutObjectVersionTagging")
_LOCK = _names("PutObject PutObjectRetention")
_LEGAL_HOLD = _names("PutObject PutObjectLegalHold")
_RETENTION_DAYS = _names("PutObject PutObjectRetention BypassGovernanceRetention")
_SSE_C = _names("PutObject GetObject GetObjectVersion")
_OWNERSHIP = _names("CreateBucket PutBucketOwnershipControls")

ANY = None     # a key that every S3 action accepts

# lower-case S3 key -> the actions it applies to (ANY: all of them)
S3_CONDITION_KEYS: dict[str, frozenset[str] | None] = {
    "s3:accessgrantsinstancearn": ANY,
    "s3:accesspointnetworkorigin": ANY,
    "s3:authtype": ANY,
    "s3:dataaccesspointaccount": ANY,
    "s3:dataaccesspointarn": ANY,
    "s3:resourceaccount": ANY,
    "s3:signatureage": ANY,
    "s3:signatureversion": ANY,
    "s3:tlsversion": ANY,
    "s3:x-amz-content-sha256": ANY,
    "s3:delimiter": _LIST,
    "s3:max-keys": _LIST,
    "s3:prefix": _LIST,
    "s3:x-amz-acl": _ACL_WRITE,
    "s3:x-amz-grant-full-control": _ACL_WRITE,
    "s3:x-amz-grant-read": _ACL_WRITE,
    "s3:x-amz-grant-read-acp": _ACL_WRITE,
    "s3:x-amz-grant-write": _ACL_WRITE,
    "s3:x-amz-grant-write-acp": _ACL_WRITE,
    "s3:x-amz-copy-source": _OBJECT_WRITE,
    "s3:x-amz-metadata-directive": _OBJECT_WRITE,
    "s3:x-amz-server-side-encryption": _OBJECT_WRITE,
    "s3:x-amz-server-side-encryption-aws-kms-key-id": _OBJECT_WRITE,
    "s3:x-amz-server-side-encryption-customer-algorithm": _SSE_C,
    "s3:x-amz-storage-class": _OBJECT_WRITE,
    "s3:x-amz-website-redirect-location": _OBJECT_WRITE,
    "s3:if-match": _OBJECT_WRITE,
    "s3:if-none-match": _OBJECT_WRITE,
    "s3:objectcreationoperation": _OBJECT_WRITE,
    "s3:requestobjecttagkeys": _REQUEST_TAG,
    "s3:versionid": _VERSIONED,
    "s3:object-lock-mode": _LOCK,
    "s3:object-lock-retain-until-date": _LOCK,
    "s3:object-lock-remaining-retention-days": _RETENTION_DAYS,
    "s3:object-lock-legal-hold": _LEGAL_HOLD,
    "s3:locationconstraint": _names("CreateBucket"),
    "s3:x-amz-object-ownership": _OWNERSHIP,
}

# keys with a tag key after the slash
S3_TAG_KEY_PREFIXES: dict[str, frozenset[str]] = {
    "s3:existingobjecttag/": _EXISTING_TAG,
    "s3:requestobjecttag/": _REQUEST_TAG,
}

GLOBAL_PREFIX = "aws:"


def condition_key_actions(key: str) -> tuple[bool, frozenset[str] | None]:
    """(known, actions it applies to or None for any). Global ``aws:`` keys apply to every
    action (S3 accepts any ``aws:`` key, as IAM does); an unknown ``s3:`` key, or a key of
    another service, is not known."""
    lowered = key.lower()
    if lowered.startswith(GLOBAL_PREFIX) and len(lowered) > len(GLOBAL_PREFIX):
        return True, ANY
    if lowered in S3_CONDITION_KEYS:
        return True, S3_CONDITION_KEYS[lowered]
    for prefix, actions in S3_TAG_KEY_PREFIXES.items():
        if lowered.startswith(prefix) and len(lowered) > len(prefix):
            return True, actions
    return False, ANY
