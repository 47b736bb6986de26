"""Launch templates as EC2 has them: versions, $Latest/$Default, SourceVersion, validation errors and
warnings, filters, GetLaunchTemplateData, RunInstances merging a template with its own parameters
(and ``resolve:ssm:``), per account."""
from __future__ import annotations

import base64

import pytest

from ec2_api import errors, launch_templates as lt
from ec2_api.instances import describe_instances, run_instances
from storage import parameters
from tests.ec2.conftest import ALICE, BOB
from tests.ec2.helpers import wire


async def call(env, operation: str, params: dict, account: str = ALICE) -> dict:
    handler = {"CreateLaunchTemplate": lt.create_launch_template,
               "CreateLaunchTemplateVersion": lt.create_launch_template_version,
               "DescribeLaunchTemplates": lt.describe_launch_templates,
               "DescribeLaunchTemplateVersions": lt.describe_launch_template_versions,
               "ModifyLaunchTemplate": lt.modify_launch_template, "DeleteLaunchTemplate": lt.delete_launch_template,
               "DeleteLaunchTemplateVersions": lt.delete_launch_template_versions,
               "GetLaunchTemplateData": lt.get_launch_template_data}[operation]
    out = await handler(env.ctx(account), params)
    wire(operation, out)
    return out


async def code_of(coro) -> str:
    with pytest.raises(errors.EC2Error) as caught:
        await coro
    return caught.value.code


async def test_versions_latest_default_and_source_version(env, tiny_image):
    out = await call(env, "CreateLaunchTemplate", {
        "LaunchTemplateName": "web", "VersionDescription": "first",
        "LaunchTemplateData": {"ImageId": tiny_image, "InstanceType": "t3.micro",
                               "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}]},
        "TagSpecifications": [{"ResourceType": "launch-template", "Tags": [{"Key": "team", "Value": "a"}]}]})
    template = out["LaunchTemplate"]
    assert template["LaunchTemplateId"].startswith("lt-") and template["DefaultVersionNumber"] == 1
    assert template["LatestVersionNumber"] == 1 and template["CreatedBy"] == f"arn:aws:iam::{ALICE}:root"
    assert template["Tags"] == [{"Key": "team", "Value": "a"}] and "Warning" not in out
    tid = template["LaunchTemplateId"]
    v2 = await call(env, "CreateLaunchTemplateVersion", {"LaunchTemplateId": tid, "SourceVersion": "1",
                                                         "LaunchTemplateData": {"InstanceType": "t3.small"}})
    data = v2["LaunchTemplateVersion"]["LaunchTemplateData"]
    assert v2["LaunchTemplateVersion"]["VersionNumber"] == 2 and v2["LaunchTemplateVersion"]["DefaultVersion"] is False
    assert data["InstanceType"] == "t3.small" and data["ImageId"] == tiny_image      # inherited from version 1
    assert data["TagSpecifications"][0]["Tags"] == [{"Key": "role", "Value": "web"}]
    v3 = await call(env, "CreateLaunchTemplateVersion", {"LaunchTemplateName": "web",
                                                         "LaunchTemplateData": {"InstanceType": "t3.nano"}})
    assert "ImageId" not in v3["LaunchTemplateVersion"]["LaunchTemplateData"]      # no SourceVersion: nothing inherited
    listed = await call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateId": tid, "Versions": ["$Latest", "$Default"]})
    assert sorted(v["VersionNumber"] for v in listed["LaunchTemplateVersions"]) == [1, 3]
    everything = await call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateName": "web"})
    assert [v["VersionNumber"] for v in everything["LaunchTemplateVersions"]] == [3, 2, 1]
    ranged = await call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateName": "web", "MinVersion": "2",
                                                                "MaxVersion": "2"})
    assert [v["VersionNumber"] for v in ranged["LaunchTemplateVersions"]] == [2]
    filtered = await call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateName": "web", "Filters": [
        {"Name": "instance-type", "Values": ["t3.small"]}]})
    assert [v["VersionNumber"] for v in filtered["LaunchTemplateVersions"]] == [2]
    modified = await call(env, "ModifyLaunchTemplate", {"LaunchTemplateId": tid, "DefaultVersion": "2"})
    assert modified["LaunchTemplate"]["DefaultVersionNumber"] == 2
    deleted = await call(env, "DeleteLaunchTemplateVersions", {"LaunchTemplateId": tid, "Versions": ["1", "2", "9"]})
    assert [v["VersionNumber"] for v in deleted["SuccessfullyDeletedLaunchTemplateVersions"]] == [1]
    codes = {e["VersionNumber"]: e["ResponseError"]["Code"] for e in deleted["UnsuccessfullyDeletedLaunchTemplateVersions"]}
    assert codes == {2: "unexpectedError", 9: "launchTemplateVersionDoesNotExist"}
    assert await code_of(call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateId": tid, "Versions": ["1"]})) \
        == "InvalidLaunchTemplateId.VersionNotFound"
    v4 = await call(env, "CreateLaunchTemplateVersion", {"LaunchTemplateId": tid, "LaunchTemplateData": {}})
    assert v4["LaunchTemplateVersion"]["VersionNumber"] == 4          # numbers are never reused
    gone = await call(env, "DeleteLaunchTemplate", {"LaunchTemplateName": "web"})
    assert gone["LaunchTemplate"]["LaunchTemplateId"] == tid
    assert await code_of(call(env, "DescribeLaunchTemplates", {"LaunchTemplateIds": [tid]})) == \
        "InvalidLaunchTemplateId.NotFound"


async def test_errors_and_warnings(env, tiny_image):
    await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "one", "LaunchTemplateData": {}})
    cases = [
        ("CreateLaunchTemplate", {"LaunchTemplateName": "one", "LaunchTemplateData": {}},
         "InvalidLaunchTemplateName.AlreadyExistsException"),
        ("CreateLaunchTemplate", {"LaunchTemplateName": "a b", "LaunchTemplateData": {}},
         "InvalidLaunchTemplateName.MalformedException"),
        ("CreateLaunchTemplate", {"LaunchTemplateName": "bad-1", "LaunchTemplateData": {"UserData": "%%%"}},
         "InvalidUserData.Malformed"),
        ("CreateLaunchTemplate", {"LaunchTemplateName": "bad-2", "LaunchTemplateData": {"MetadataOptions": {"HttpTokens": "x"}}},
         "InvalidParameterValue"),
        ("CreateLaunchTemplate", {"LaunchTemplateName": "bad-3", "LaunchTemplateData": {"TagSpecifications": [
            {"ResourceType": "image", "Tags": [{"Key": "a", "Value": "b"}]}]}}, "InvalidParameterValue"),
        ("CreateLaunchTemplate", {"LaunchTemplateName": "bad-4", "LaunchTemplateData": {}, "DryRun": True}, "DryRunOperation"),
        ("DescribeLaunchTemplates", {"LaunchTemplateNames": ["nothing"]}, "InvalidLaunchTemplateName.NotFoundException"),
        ("DescribeLaunchTemplates", {"LaunchTemplateIds": ["lt-1"]}, "InvalidLaunchTemplateId.Malformed"),
        ("CreateLaunchTemplateVersion", {"LaunchTemplateId": "lt-0123456789abcdef0", "LaunchTemplateData": {}},
         "InvalidLaunchTemplateId.NotFound"),
        ("CreateLaunchTemplateVersion", {"LaunchTemplateName": "one", "SourceVersion": "7", "LaunchTemplateData": {}},
         "InvalidLaunchTemplateId.VersionNotFound"),
        ("ModifyLaunchTemplate", {"LaunchTemplateName": "one", "DefaultVersion": "5"},
         "InvalidLaunchTemplateId.VersionNotFound"),
        ("DeleteLaunchTemplate", {}, "MissingParameter"),
        ("DeleteLaunchTemplate", {"LaunchTemplateName": "one", "LaunchTemplateId": "lt-0123456789abcdef0"},
         "InvalidParameterCombination"),
    ]
    for operation, params, code in cases:
        assert await code_of(call(env, operation, params)) == code, (operation, params)
    out = await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "warned", "LaunchTemplateData": {
        "ImageId": "ami-0123456789abcdef0", "InstanceType": "t9.huge", "KeyName": "nokey"}})
    codes = sorted(e["Code"] for e in out["Warning"]["Errors"])
    assert codes == ["InvalidAMIID.NotFound", "InvalidInstanceType", "InvalidKeyPair.NotFound"]


async def test_describe_filters_pagination_and_accounts(env):
    for name in ("alpha", "beta", "gamma"):
        await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": name, "LaunchTemplateData": {},
                                                 "TagSpecifications": [{"ResourceType": "launch-template",
                                                                        "Tags": [{"Key": "n", "Value": name}]}]})
    page = await call(env, "DescribeLaunchTemplates", {"MaxResults": 2})
    rest = await call(env, "DescribeLaunchTemplates", {"MaxResults": 2, "NextToken": page["NextToken"]})
    assert len(page["LaunchTemplates"]) == 2 and len(rest["LaunchTemplates"]) == 1 and rest.get("NextToken") is None
    by_tag = await call(env, "DescribeLaunchTemplates", {"Filters": [{"Name": "tag:n", "Values": ["b*"]}]})
    assert [t["LaunchTemplateName"] for t in by_tag["LaunchTemplates"]] == ["beta"]
    by_name = await call(env, "DescribeLaunchTemplates", {"Filters": [{"Name": "launch-template-name", "Values": ["gamma"]}]})
    assert len(by_name["LaunchTemplates"]) == 1
    assert (await call(env, "DescribeLaunchTemplates", {}, BOB))["LaunchTemplates"] == []
    assert await code_of(call(env, "DescribeLaunchTemplates", {"LaunchTemplateNames": ["alpha"]}, BOB)) == \
        "InvalidLaunchTemplateName.NotFoundException"
    assert await code_of(call(env, "DeleteLaunchTemplate", {"LaunchTemplateName": "alpha"}, BOB)) == \
        "InvalidLaunchTemplateName.NotFoundException"
    await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "alpha", "LaunchTemplateData": {}}, BOB)   # names are per account


async def test_run_instances_merges_the_template(env, tiny_image):
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    out = await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "app", "LaunchTemplateData": {
        "ImageId": tiny_image, "InstanceType": "t3.micro", "UserData": user_data,
        "MetadataOptions": {"HttpTokens": "required"},
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "app"},
                                                                   {"Key": "env", "Value": "dev"}]},
                              {"ResourceType": "spot-instances-request", "Tags": [{"Key": "s", "Value": "1"}]}]}})
    tid = out["LaunchTemplate"]["LaunchTemplateId"]
    await call(env, "CreateLaunchTemplateVersion", {"LaunchTemplateId": tid, "SourceVersion": "$Latest",
                                                    "LaunchTemplateData": {"InstanceType": "t3.small"}})
    run = await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "LaunchTemplate": {"LaunchTemplateId": tid},
                                          "TagSpecifications": [{"ResourceType": "instance",
                                                                 "Tags": [{"Key": "env", "Value": "prod"}]}]})
    (instance,) = run["Instances"]
    assert instance["InstanceType"] == "t3.micro" and instance["ImageId"] == tiny_image     # $Default = version 1
    assert instance["MetadataOptions"]["HttpTokens"] == "required"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"role": "app", "env": "prod", "aws:ec2launchtemplate:id": tid, "aws:ec2launchtemplate:version": "1"}
    latest = await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "InstanceType": "t3.nano",
                                             "LaunchTemplate": {"LaunchTemplateName": "app", "Version": "$Latest"}})
    (instance,) = latest["Instances"]
    assert instance["InstanceType"] == "t3.nano"          # the call's own parameter wins
    assert {t["Key"]: t["Value"] for t in instance["Tags"]}["aws:ec2launchtemplate:version"] == "2"
    with pytest.raises(errors.EC2Error) as caught:
        await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "LaunchTemplate": {"LaunchTemplateId": tid,
                                                                                          "Version": "9"}})
    assert caught.value.code == "InvalidLaunchTemplateId.VersionNotFound"
    with pytest.raises(errors.EC2Error) as caught:     # Bob cannot use Alice's template
        await run_instances(env.ctx(BOB), {"MinCount": 1, "MaxCount": 1, "LaunchTemplate": {"LaunchTemplateId": tid}})
    assert caught.value.code == "InvalidLaunchTemplateId.NotFound"
    # the merged request goes through RunInstances' normal validation
    await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "broken", "LaunchTemplateData": {
        "ImageId": "ami-0123456789abcdef0"}})
    with pytest.raises(errors.EC2Error) as caught:
        await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "LaunchTemplate": {"LaunchTemplateName": "broken"}})
    assert caught.value.code == "InvalidAMIID.NotFound"
    data = await call(env, "GetLaunchTemplateData", {"InstanceId": run["Instances"][0]["InstanceId"]})
    got = data["LaunchTemplateData"]
    assert got["ImageId"] == tiny_image and got["InstanceType"] == "t3.micro" and got["UserData"] == user_data
    assert got["MetadataOptions"]["HttpTokens"] == "required"
    assert {t["Key"] for t in got["TagSpecifications"][0]["Tags"]} == {"role", "env"}
    await env.settle()


async def test_image_id_resolved_from_ssm_parameters(env, tiny_image):
    # the public parameter names the newest public tiny image, live
    run = await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1,
                                          "ImageId": "resolve:ssm:/aws/service/nimbo/tiny/latest"})
    assert run["Instances"][0]["ImageId"] == tiny_image
    # a tenant's own parameter, by version and by label; another tenant does not see it
    await parameters.put(env.db, ALICE, "us-east-1", parameters.Parameter("/golden/ami", "String", tiny_image, 0, 0,
                                                                         "aws:ec2:image"), overwrite=False)
    await parameters.put(env.db, ALICE, "us-east-1", parameters.Parameter("/golden/ami", None, "ami-0123456789abcdef0",
                                                                         0, 0, None), overwrite=True)
    await parameters.set_labels(env.db, ALICE, "us-east-1", "/golden/ami", 1, ["stable"])
    for ref in ("resolve:ssm:/golden/ami:1", "resolve:ssm:/golden/ami:stable"):
        run = await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "ImageId": ref})
        assert run["Instances"][0]["ImageId"] == tiny_image
    with pytest.raises(errors.EC2Error) as caught:        # the latest version names an AMI that does not exist
        await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "ImageId": "resolve:ssm:/golden/ami"})
    assert caught.value.code == "InvalidAMIID.NotFound"
    with pytest.raises(errors.EC2Error) as caught:
        await run_instances(env.ctx(BOB), {"MinCount": 1, "MaxCount": 1, "ImageId": "resolve:ssm:/golden/ami:1"})
    assert caught.value.code == "SsmInvalidParameter"
    # EC2 resolves only parameters of the aws:ec2:image data type, at launch and in templates
    await parameters.put(env.db, ALICE, "us-east-1", parameters.Parameter("/plain/ami", "String", tiny_image, 0, 0,
                                                                         "text"), overwrite=False)
    with pytest.raises(errors.EC2Error) as caught:
        await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "ImageId": "resolve:ssm:/plain/ami"})
    assert caught.value.code == "SsmInvalidParameter" and "aws:ec2:image" in caught.value.message
    for data_image in ("resolve:ssm:/plain/ami", "resolve:ssm:/no/such"):
        assert await code_of(call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "bad-ssm", "LaunchTemplateData": {
            "ImageId": data_image}})) == "SsmInvalidParameter"
    # a template may hold resolve:ssm; ResolveAlias shows the AMI it names
    out = await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "ssm", "LaunchTemplateData": {
        "ImageId": "resolve:ssm:/aws/service/nimbo/tiny/latest"}})
    assert "Warning" not in out
    shown = await call(env, "DescribeLaunchTemplateVersions", {"LaunchTemplateName": "ssm", "ResolveAlias": True})
    assert shown["LaunchTemplateVersions"][0]["LaunchTemplateData"]["ImageId"] == tiny_image
    run = await run_instances(env.ctx(), {"MinCount": 1, "MaxCount": 1, "LaunchTemplate": {"LaunchTemplateName": "ssm"}})
    assert run["Instances"][0]["ImageId"] == tiny_image
    instances = await describe_instances(env.ctx(), {})
    assert all(i["ImageId"] == tiny_image for r in instances["Reservations"] for i in r["Instances"])
    await env.settle()


async def test_create_tags_on_launch_templates_per_account(env):
    from ec2_api.tags import create_tags, describe_tags
    tid = (await call(env, "CreateLaunchTemplate", {"LaunchTemplateName": "tagged",
                                                    "LaunchTemplateData": {}}))["LaunchTemplate"]["LaunchTemplateId"]
    await create_tags(env.ctx(), {"Resources": [tid], "Tags": [{"Key": "stage", "Value": "blue"}]})
    (template,) = (await call(env, "DescribeLaunchTemplates", {"LaunchTemplateIds": [tid]}))["LaunchTemplates"]
    assert template["Tags"] == [{"Key": "stage", "Value": "blue"}]
    tags = await describe_tags(env.ctx(), {"Filters": [{"Name": "resource-type", "Values": ["launch-template"]}]})
    assert [(t["ResourceId"], t["Key"]) for t in tags["Tags"]] == [(tid, "stage")]
    with pytest.raises(errors.EC2Error) as caught:
        await create_tags(env.ctx(BOB), {"Resources": [tid], "Tags": [{"Key": "x", "Value": "y"}]})
    assert caught.value.code == "InvalidLaunchTemplateId.NotFound"
    await call(env, "DeleteLaunchTemplate", {"LaunchTemplateId": tid})
    assert (await describe_tags(env.ctx(), {}))["Tags"] == []
