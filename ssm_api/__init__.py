"""Systems Manager (``ssm``, JSON protocol): Parameter Store for tenants' parameters and the public
image parameters under ``/aws/service/``."""
