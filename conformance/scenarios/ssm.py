"""Systems Manager Parameter Store scenarios (JSON protocol): a tenant's parameters (versions,
selectors, labels, paths, descriptions, deletion, errors) and the public image parameters under
``/aws/service/`` that scripts resolve AMIs with."""
from __future__ import annotations

from conformance import scenario

TINY_PARAMETER = "/aws/service/nimbo/tiny/latest"


def _parameter(ctx, hint: str = "p") -> str:
    name = f"/{ctx.name(hint)}/value"
    ctx.defer(_delete_quietly, ctx, name)
    return name


def _delete_quietly(ctx, name: str) -> None:
    try:
        ctx.client("ssm", validate=False).delete_parameter(Name=name)
    except Exception:  # noqa: BLE001 - a clean-up
        pass


@scenario("ssm", ["PutParameter", "GetParameter", "GetParameterHistory", "LabelParameterVersion"], client="boto3")
def parameter_versions(ctx):
    """Each PutParameter with Overwrite adds a version; name:N and name:label select one; the
    history lists them all."""
    name = _parameter(ctx)
    ctx.check_equal(ctx.call("ssm", "PutParameter", Name=name, Value="one", Type="String")["Version"], 1, "Version")
    ctx.check_equal(ctx.call("ssm", "PutParameter", Name=name, Value="two", Type="String",
                             Overwrite=True)["Version"], 2, "Version after overwrite")
    got = ctx.call("ssm", "GetParameter", Name=name)["Parameter"]
    ctx.check_equal((got["Value"], got["Version"], got["Type"]), ("two", 2, "String"), "latest")
    first = ctx.call("ssm", "GetParameter", Name=f"{name}:1")["Parameter"]
    ctx.check_equal((first["Value"], first.get("Selector")), ("one", ":1"), "name:1")
    ctx.call("ssm", "LabelParameterVersion", Name=name, ParameterVersion=1, Labels=["golden"])
    ctx.check_equal(ctx.call("ssm", "GetParameter", Name=f"{name}:golden")["Parameter"]["Value"], "one", "name:label")
    history = ctx.call("ssm", "GetParameterHistory", Name=name)["Parameters"]
    ctx.check_equal([(h["Version"], h["Value"]) for h in history], [(1, "one"), (2, "two")], "history")


@scenario("ssm", ["PutParameter", "GetParameter", "DeleteParameter"], client="boto3", variant="errors")
def parameter_errors(ctx):
    """ParameterAlreadyExists without Overwrite, ParameterNotFound, ParameterVersionNotFound."""
    name = _parameter(ctx)
    ctx.call("ssm", "PutParameter", Name=name, Value="v", Type="String")
    with ctx.expect_error("ParameterAlreadyExists", 400):
        ctx.call("ssm", "PutParameter", Name=name, Value="w", Type="String")
    with ctx.expect_error("ParameterVersionNotFound", 400):
        ctx.call("ssm", "GetParameter", Name=f"{name}:9")
    ctx.call("ssm", "DeleteParameter", Name=name)
    with ctx.expect_error("ParameterNotFound", 400):
        ctx.call("ssm", "GetParameter", Name=name)
    with ctx.expect_error("ParameterNotFound", 400):
        ctx.call("ssm", "DeleteParameter", Name=name)


@scenario("ssm", ["GetParametersByPath", "GetParameters", "DescribeParameters", "DeleteParameters"], client="boto3")
def parameter_paths(ctx):
    """GetParametersByPath one level or recursive, page by page; GetParameters names the missing
    ones; DescribeParameters filters by name prefix; DeleteParameters reports what it deleted."""
    root = f"/{ctx.name('tree')}"
    names = [f"{root}/a", f"{root}/b", f"{root}/deep/c"]
    for name in names:
        ctx.call("ssm", "PutParameter", Name=name, Value="v", Type="String")
        ctx.defer(_delete_quietly, ctx, name)
    level = ctx.call("ssm", "GetParametersByPath", Path=root)["Parameters"]
    ctx.check_equal(sorted(p["Name"] for p in level), names[:2], "one level")
    seen, token = [], None
    for _ in range(5):
        page = ctx.call("ssm", "GetParametersByPath", Path=root, Recursive=True, MaxResults=1,
                        **({"NextToken": token} if token else {}))
        seen += [p["Name"] for p in page["Parameters"]]
        token = page.get("NextToken")
        if not token:
            break
    ctx.check_equal(sorted(seen), names, "recursive, one per page")
    many = ctx.call("ssm", "GetParameters", Names=[names[0], f"{root}/missing"])
    ctx.check_equal(([p["Name"] for p in many["Parameters"]], many["InvalidParameters"]),
                    ([names[0]], [f"{root}/missing"]), "GetParameters")
    described = ctx.call("ssm", "DescribeParameters", ParameterFilters=[
        {"Key": "Name", "Option": "BeginsWith", "Values": [root]}])["Parameters"]
    ctx.check_equal(sorted(p["Name"] for p in described), names, "DescribeParameters BeginsWith")
    deleted = ctx.call("ssm", "DeleteParameters", Names=[names[0], f"{root}/missing"])
    ctx.check_equal((deleted["DeletedParameters"], deleted["InvalidParameters"]),
                    ([names[0]], [f"{root}/missing"]), "DeleteParameters")


@scenario("ssm", ["GetParameter", "PutParameter"], client="awscli")
def parameter_cli(ctx):
    """`aws ssm put-parameter` and `aws ssm get-parameter`."""
    name = _parameter(ctx)
    ctx.aws("ssm", "put-parameter", "--name", name, "--type", "String", "--value", "from-cli")
    got = ctx.aws("ssm", "get-parameter", "--name", name)
    ctx.check_equal(got["Parameter"]["Value"], "from-cli", "Value")


@scenario("ssm", ["GetParameter", "GetParametersByPath"], client="boto3", variant="public image parameter")
def public_image_parameter(ctx):
    """/aws/service/nimbo/tiny/latest names an available public AMI (skipped where it does not exist)."""
    try:
        parameter = ctx.client("ssm", validate=False).get_parameter(Name=TINY_PARAMETER)["Parameter"]
    except Exception:  # noqa: BLE001 - an endpoint without that public parameter
        ctx.skip(f"the endpoint has no {TINY_PARAMETER}")
    got = ctx.call("ssm", "GetParameter", Name=TINY_PARAMETER)["Parameter"]
    ctx.check_equal(got["Value"], parameter["Value"], "Value")
    ctx.check_equal(got.get("DataType"), "aws:ec2:image", "DataType")
    (image,) = ctx.call("ec2", "DescribeImages", ImageIds=[got["Value"]])["Images"]
    ctx.check_equal(image.get("State"), "available", "the named image's State")
    listed = ctx.call("ssm", "GetParametersByPath", Path="/aws/service/nimbo", Recursive=True)["Parameters"]
    ctx.check(TINY_PARAMETER in [p["Name"] for p in listed], f"{TINY_PARAMETER} not under /aws/service/nimbo")


@scenario("ec2", "RunInstances", client="awscli", variant="resolve:ssm")
def run_instances_resolve_ssm(ctx):
    """`aws ec2 run-instances --image-id resolve:ssm:/aws/service/nimbo/tiny/latest` launches that AMI."""
    try:
        parameter = ctx.client("ssm", validate=False).get_parameter(Name=TINY_PARAMETER)["Parameter"]
    except Exception:  # noqa: BLE001
        ctx.skip(f"the endpoint has no {TINY_PARAMETER}")
    from conformance.scenarios.ec2_instances import terminate_quietly  # noqa: PLC0415
    out = ctx.aws("ec2", "run-instances", "--image-id", f"resolve:ssm:{TINY_PARAMETER}", "--count", "1",
                  "--instance-type", "t2.nano")
    ids = [i["InstanceId"] for i in out["Instances"]]
    ctx.defer(terminate_quietly, ctx, ids)
    ctx.check_equal(out["Instances"][0]["ImageId"], parameter["Value"], "ImageId")


@scenario("ssm", ["AddTagsToResource", "ListTagsForResource", "RemoveTagsFromResource"], client="boto3")
def parameter_tags(ctx):
    """A parameter's tags are added, listed and removed by key."""
    name = _parameter(ctx)
    ctx.call("ssm", "PutParameter", Name=name, Value="v", Type="String")
    ctx.call("ssm", "AddTagsToResource", ResourceType="Parameter", ResourceId=name,
             Tags=[{"Key": "team", "Value": "a"}, {"Key": "env", "Value": "dev"}])
    listed = ctx.call("ssm", "ListTagsForResource", ResourceType="Parameter", ResourceId=name)["TagList"]
    ctx.check_equal(sorted((t["Key"], t["Value"]) for t in listed), [("env", "dev"), ("team", "a")], "TagList")
    ctx.call("ssm", "RemoveTagsFromResource", ResourceType="Parameter", ResourceId=name, TagKeys=["team"])
    listed = ctx.call("ssm", "ListTagsForResource", ResourceType="Parameter", ResourceId=name)["TagList"]
    ctx.check_equal([t["Key"] for t in listed], ["env"], "TagList after removal")
