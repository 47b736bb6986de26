"""STS scenarios (the query protocol)."""
from __future__ import annotations

import re
import secrets

from conformance import scenario

ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam|sts)::(\d{12}):(\S+)$")
# What AWS answers: users and root are IAM ARNs, assumed roles and federated users STS ones.
AWS_ARN_RE = re.compile(r"^arn:aws[a-z-]*:(iam::\d{12}:(root|user/\S+)|"
                        r"sts::\d{12}:(assumed-role|federated-user)/\S+)$")


def _check_identity(ctx, identity) -> None:
    account, arn = identity.get("Account", ""), identity.get("Arn", "")
    ctx.check(re.fullmatch(r"\d{12}", account), f"Account is not a 12-digit id: {account!r}")
    match = ARN_RE.match(arn)
    ctx.check(match, f"Arn is not an IAM/STS ARN: {arn!r}")
    ctx.check_equal(match.group(2), account, "the account in the Arn")
    if not AWS_ARN_RE.match(arn):
        ctx.warn("GetCallerIdentity.Arn", f"{arn!r} is not of a form AWS answers with "
                                          "(arn:aws:iam::ACCOUNT:user/NAME or :root, "
                                          "arn:aws:sts::ACCOUNT:assumed-role/...)")
    ctx.check(identity.get("UserId"), "UserId is empty")


@scenario("sts", "GetCallerIdentity", client="boto3")
def get_caller_identity(ctx):
    """The caller's account, ARN and user id."""
    _check_identity(ctx, ctx.call("sts", "GetCallerIdentity"))


@scenario("sts", "GetCallerIdentity", client="awscli")
def get_caller_identity_cli(ctx):
    """`aws sts get-caller-identity`."""
    _check_identity(ctx, ctx.aws("sts", "get-caller-identity").json)


@scenario("sts", "GetCallerIdentity", client="boto3", variant="wrong secret")
def get_caller_identity_wrong_secret(ctx):
    """A request signed with the wrong secret is refused with SignatureDoesNotMatch (403)."""
    with ctx.expect_error("SignatureDoesNotMatch", 403):
        ctx.with_credentials(secret_key=ctx.secret_key + "x").call("sts", "GetCallerIdentity")


@scenario("sts", "GetCallerIdentity", client="boto3", variant="unknown key")
def get_caller_identity_unknown_key(ctx):
    """A request signed with an access key the endpoint does not know: InvalidClientTokenId (403),
    as STS answers."""
    stranger = "AKIA" + secrets.token_hex(8).upper()
    with ctx.expect_error("InvalidClientTokenId", 403):
        ctx.with_credentials(access_key=stranger).call("sts", "GetCallerIdentity")
