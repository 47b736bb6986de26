"""Key Management Service (``kms``, JSON protocol): symmetric keys per account and region, their
aliases, tags and key policies, the cryptographic operations on them, and the AWS managed keys
(``alias/aws/s3``) that other services (S3's SSE-KMS) use through ``kms_api.data_keys``."""
