"""Bring your own image, launch templates and SSM parameters end to end, as a new user would: boto3
and aws-cli (v1) against a live ``nimbo serve --backend fake`` whose public tiny image was
registered with ``nimbo image import --public`` before the start. Uploads go through S3 and are
imported with ImportImage; tenants are kept apart; a server killed with SIGKILL in the middle of
an import leaves no image and no file behind after its next start."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest
from botocore.exceptions import ClientError

from tests.conftest import NimboServer

pytestmark = pytest.mark.skipif(not shutil.which("qemu-img"), reason="qemu-img is needed")
TENANT = "tenant-byoi"
MiB = 1024 * 1024


def qemu_img_create(path: str, fmt: str, size: str, *extra: str) -> str:
    subprocess.run(["qemu-img", "create", "-q", "-f", fmt, *extra, path, size], check=True)
    return path


def wait_task(ec2, task_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (task,) = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"]
        if task["Status"] in ("completed", "deleted"):
            return task
        time.sleep(0.2)
    raise AssertionError(f"import task {task_id} did not finish: {task}")


class Cloud:
    def __init__(self, server: NimboServer, work: str) -> None:
        self.server, self.work = server, work
        self._creds: dict = {}

    def creds(self, account=None):
        if account not in self._creds:
            self._creds[account] = self.server.credentials(account)
        return self._creds[account]

    def client(self, service: str, account=None):
        return self.server.client(service, account)

    def aws(self, *args: str, account=None) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(self.creds(account))
        env["AWS_CONFIG_FILE"] = env["AWS_SHARED_CREDENTIALS_FILE"] = "/dev/null"
        return subprocess.run([sys.executable, "-m", "awscli", "--endpoint-url", self.server.endpoint,
                               "--output", "json", *args], env=env, text=True, capture_output=True, timeout=180)

    def aws_json(self, *args: str, account=None):
        out = self.aws(*args, account=account)
        assert out.returncode == 0, f"aws {' '.join(args)}: {out.stderr}"
        return json.loads(out.stdout) if out.stdout.strip() else {}


@pytest.fixture(scope="module")
def cloud():
    data_dir = tempfile.mkdtemp(prefix="nimbo-e2e-byoi-", dir="/tmp")
    work = tempfile.mkdtemp(prefix="nimbo-e2e-byoi-work-", dir="/tmp")
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    tiny = qemu_img_create(os.path.join(work, "tiny.raw"), "raw", "16M")
    out = server.nimbo("image", "import", tiny, "--data-dir", data_dir, "--public", "--name",
                       "nimbo-tiny-20260101", "--no-progress")
    server.tiny_image = out.stdout.strip()
    assert server.tiny_image.startswith("ami-"), out
    server.nimbo("admin", "--data-dir", data_dir, "create-account", TENANT)
    server.start()
    yield Cloud(server, work)
    server.stop()
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(data_dir, ignore_errors=True)


def test_import_image_from_uploaded_qcow2_and_vmdk_with_boto3(cloud):
    s3, ec2 = cloud.client("s3"), cloud.client("ec2")
    s3.create_bucket(Bucket="byoi-uploads")
    made = {}
    for fmt, declared in (("qcow2", None), ("vmdk", "VMDK")):
        path = qemu_img_create(os.path.join(cloud.work, f"disk.{fmt}"), fmt, "96M")
        s3.upload_file(path, "byoi-uploads", f"disks/disk.{fmt}")
        container = {"UserBucket": {"S3Bucket": "byoi-uploads", "S3Key": f"disks/disk.{fmt}"}}
        if declared:
            container["Format"] = declared
        out = ec2.import_image(DiskContainers=[container], Description=f"my {fmt}")
        assert out["Status"] == "active" and out["ImportTaskId"].startswith("import-ami-")
        made[fmt] = out["ImportTaskId"]
    for fmt, task_id in made.items():
        task = wait_task(ec2, task_id)
        assert task["Status"] == "completed", task
        assert task["SnapshotDetails"][0]["Format"] == fmt.upper()
        (image,) = ec2.describe_images(ImageIds=[task["ImageId"]])["Images"]
        assert image["State"] == "available" and image["Description"] == f"my {fmt}"
        run = ec2.run_instances(ImageId=task["ImageId"], MinCount=1, MaxCount=1)
        instance_id = run["Instances"][0]["InstanceId"]
        ec2.get_waiter("instance_running").wait(InstanceIds=[instance_id], WaiterConfig={"Delay": 0.5, "MaxAttempts": 40})
        ec2.terminate_instances(InstanceIds=[instance_id])
    # a file that is not what it claims fails its task and registers nothing
    s3.put_object(Bucket="byoi-uploads", Key="disks/junk.vmdk", Body=os.urandom(100_000))
    bad = ec2.import_image(DiskContainers=[{"Format": "VMDK", "Url": "s3://byoi-uploads/disks/junk.vmdk"}])
    task = wait_task(ec2, bad["ImportTaskId"])
    assert task["Status"] == "deleted" and task["StatusMessage"] == \
        "ClientError: Disk validation failed [Unsupported VMDK File Format]"
    names = {i["Name"] for i in ec2.describe_images(Owners=["self"])["Images"]}
    assert bad["ImportTaskId"] not in names and made["qcow2"] in names


def test_import_image_and_register_image_with_aws_cli(cloud):
    assert cloud.aws("s3", "mb", "s3://byoi-cli").returncode == 0
    path = qemu_img_create(os.path.join(cloud.work, "cli.vmdk"), "vmdk", "32M")
    assert cloud.aws("s3", "cp", path, "s3://byoi-cli/cli.vmdk").returncode == 0
    containers = json.dumps([{"Description": "cli disk", "Format": "vmdk",
                              "UserBucket": {"S3Bucket": "byoi-cli", "S3Key": "cli.vmdk"}}])
    out = cloud.aws_json("ec2", "import-image", "--disk-containers", containers)
    ec2 = cloud.client("ec2")
    task = wait_task(ec2, out["ImportTaskId"])
    assert task["Status"] == "completed"
    listed = cloud.aws_json("ec2", "describe-import-image-tasks", "--import-task-ids", out["ImportTaskId"])
    assert listed["ImportImageTasks"][0]["ImageId"] == task["ImageId"]
    registered = cloud.aws_json("ec2", "register-image", "--name", "cli-registered", "--image-location",
                                "byoi-cli/cli.vmdk")
    cloud.aws_json("ec2", "wait", "image-available", "--image-ids", registered["ImageId"])
    missing = cloud.aws("ec2", "register-image", "--name", "nothing-here", "--image-location", "byoi-cli/nope.vmdk")
    assert missing.returncode != 0 and "InvalidManifest" in missing.stderr


def test_a_tenant_cannot_import_from_another_tenants_bucket(cloud):
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="byoi-admin-only")
    path = qemu_img_create(os.path.join(cloud.work, "private.qcow2"), "qcow2", "16M")
    s3.upload_file(path, "byoi-admin-only", "private.qcow2")
    tenant_ec2 = cloud.client("ec2", TENANT)
    out = tenant_ec2.import_image(DiskContainers=[{"Url": "s3://byoi-admin-only/private.qcow2"}])
    task = wait_task(tenant_ec2, out["ImportTaskId"])
    assert task["Status"] == "deleted" and "403 Forbidden" in task["StatusMessage"] and "ImageId" not in task
    with pytest.raises(ClientError) as caught:
        tenant_ec2.register_image(Name="stolen", ImageLocation="byoi-admin-only/private.qcow2")
    assert caught.value.response["Error"]["Code"] == "InvalidManifest"
    # the owner's import task is not the tenant's to see or cancel
    with pytest.raises(ClientError) as caught:
        cloud.client("ec2").describe_import_image_tasks(ImportTaskIds=[out["ImportTaskId"]])
    assert caught.value.response["Error"]["Code"] == "InvalidConversionTaskId"
    with pytest.raises(ClientError) as caught:
        cloud.client("ec2").cancel_import_task(ImportTaskId=out["ImportTaskId"])
    assert caught.value.response["Error"]["Code"] == "InvalidConversionTaskId"


def test_run_instances_with_a_launch_template_and_resolve_ssm(cloud):
    ec2 = cloud.client("ec2")
    template = ec2.create_launch_template(LaunchTemplateName="byoi-web", LaunchTemplateData={
        "ImageId": "resolve:ssm:/aws/service/nimbo/tiny/latest", "InstanceType": "t3.micro",
        "TagSpecifications": [{"ResourceType": "instance", "Tags": [{"Key": "role", "Value": "web"}]}]})["LaunchTemplate"]
    ec2.create_launch_template_version(LaunchTemplateId=template["LaunchTemplateId"], SourceVersion="1",
                                       LaunchTemplateData={"InstanceType": "t3.small"})
    # aws-cli, as a script would: the template by name, $Latest, plus the call's own tag
    run = cloud.aws_json("ec2", "run-instances", "--launch-template", "LaunchTemplateName=byoi-web,Version=$Latest",
                         "--tag-specifications", "ResourceType=instance,Tags=[{Key=owner,Value=me}]")
    (instance,) = run["Instances"]
    assert instance["ImageId"] == cloud.server.tiny_image and instance["InstanceType"] == "t3.small"
    tags = {t["Key"]: t["Value"] for t in instance["Tags"]}
    assert tags == {"role": "web", "owner": "me", "aws:ec2launchtemplate:id": template["LaunchTemplateId"],
                    "aws:ec2launchtemplate:version": "2"}
    direct = cloud.aws_json("ec2", "run-instances", "--image-id", "resolve:ssm:/aws/service/nimbo/tiny/latest",
                            "--count", "1")
    assert direct["Instances"][0]["ImageId"] == cloud.server.tiny_image
    versions = ec2.describe_launch_template_versions(LaunchTemplateName="byoi-web", Versions=["$Latest"],
                                                     ResolveAlias=True)["LaunchTemplateVersions"]
    assert versions[0]["LaunchTemplateData"]["ImageId"] == cloud.server.tiny_image
    data = ec2.get_launch_template_data(InstanceId=instance["InstanceId"])["LaunchTemplateData"]
    assert data["InstanceType"] == "t3.small" and data["ImageId"] == cloud.server.tiny_image
    # templates are per account
    tenant = cloud.client("ec2", TENANT)
    assert tenant.describe_launch_templates()["LaunchTemplates"] == []
    with pytest.raises(ClientError) as caught:
        tenant.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateName": "byoi-web"})
    assert caught.value.response["Error"]["Code"] == "InvalidLaunchTemplateName.NotFoundException"
    with pytest.raises(ClientError) as caught:
        ec2.create_launch_template(LaunchTemplateName="byoi-web", LaunchTemplateData={"InstanceType": "t3.nano"})
    assert caught.value.response["Error"]["Code"] == "InvalidLaunchTemplateName.AlreadyExistsException"
    ec2.terminate_instances(InstanceIds=[instance["InstanceId"], direct["Instances"][0]["InstanceId"]])
    ec2.delete_launch_template(LaunchTemplateId=template["LaunchTemplateId"])


def test_ssm_parameters_with_aws_cli_and_boto3(cloud):
    public = cloud.aws_json("ssm", "get-parameter", "--name", "/aws/service/nimbo/tiny/latest")
    assert public["Parameter"]["Value"] == cloud.server.tiny_image
    assert public["Parameter"]["DataType"] == "aws:ec2:image"
    tenant_view = cloud.aws_json("ssm", "get-parameter", "--name", "/aws/service/nimbo/tiny/latest", account=TENANT)
    assert tenant_view["Parameter"]["Value"] == cloud.server.tiny_image
    cloud.aws_json("ssm", "put-parameter", "--name", "/byoi/golden", "--type", "String", "--data-type",
                   "aws:ec2:image", "--value", cloud.server.tiny_image)
    got = cloud.aws_json("ssm", "get-parameter", "--name", "/byoi/golden")
    assert got["Parameter"]["Version"] == 1 and got["Parameter"]["Value"] == cloud.server.tiny_image
    ssm = cloud.client("ssm")
    paged = ssm.get_paginator("get_parameters_by_path").paginate(Path="/byoi", Recursive=True,
                                                                 PaginationConfig={"PageSize": 1})
    assert [p["Name"] for page in paged for p in page["Parameters"]] == ["/byoi/golden"]
    run = cloud.client("ec2").run_instances(ImageId="resolve:ssm:/byoi/golden", MinCount=1, MaxCount=1)
    assert run["Instances"][0]["ImageId"] == cloud.server.tiny_image
    cloud.client("ec2").terminate_instances(InstanceIds=[run["Instances"][0]["InstanceId"]])
    # parameters are per account: the tenant neither sees nor resolves the admin's
    tenant = cloud.client("ssm", TENANT)
    with pytest.raises(ClientError) as caught:
        tenant.get_parameter(Name="/byoi/golden")
    assert caught.value.response["Error"]["Code"] == "ParameterNotFound"
    assert tenant.describe_parameters()["Parameters"] == []
    with pytest.raises(ClientError) as caught:
        cloud.client("ec2", TENANT).run_instances(ImageId="resolve:ssm:/byoi/golden", MinCount=1, MaxCount=1)
    assert caught.value.response["Error"]["Code"] == "SsmInvalidParameter"
    failed = cloud.aws("ssm", "put-parameter", "--name", "/byoi/golden", "--type", "String", "--value", "x")
    assert failed.returncode != 0 and "ParameterAlreadyExists" in failed.stderr
    cloud.aws_json("ssm", "delete-parameter", "--name", "/byoi/golden")


def test_kill_9_during_an_import_leaves_nothing_behind(tmp_path):
    """SIGKILL while qemu-img converts (a wrapper holds the conversion open): after the restart
    the task is deleted with a ServerError, and there is no image, no work file, no qemu-img."""
    data_dir = str(tmp_path / "data")
    wrapper_dir = tmp_path / "bin"
    wrapper_dir.mkdir()
    real = shutil.which("qemu-img")
    (wrapper_dir / "qemu-img").write_text(f'#!/bin/sh\nif [ "$1" = convert ]; then sleep 30; fi\nexec {real} "$@"\n')
    (wrapper_dir / "qemu-img").chmod(0o755)
    server = NimboServer(data_dir, extra_args=["--backend", "fake"])
    path = os.environ["PATH"]
    os.environ["PATH"] = f"{wrapper_dir}:{path}"
    try:
        server.start()
    finally:
        os.environ["PATH"] = path
    try:
        s3, ec2 = server.client("s3"), server.client("ec2")
        s3.create_bucket(Bucket="crash")
        disk = qemu_img_create(str(tmp_path / "d.qcow2"), "qcow2", "64M")
        s3.upload_file(disk, "crash", "d.qcow2")
        task_id = ec2.import_image(DiskContainers=[{"Url": "s3://crash/d.qcow2"}])["ImportTaskId"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            (task,) = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"]
            if task.get("StatusMessage") == "converting":
                break
            time.sleep(0.1)
        assert task.get("StatusMessage") == "converting", task
        imports = os.path.join(data_dir, "imports")
        assert os.listdir(imports) == [task_id]
        server.stop(signal.SIGKILL)
        os.unlink(os.path.join(data_dir, "endpoint"))
        time.sleep(0.3)
        leftovers = subprocess.run(["pgrep", "-f", f"{wrapper_dir}/qemu-img"], capture_output=True, text=True).stdout
        assert leftovers.strip() == "", "a qemu-img outlived the killed server"
        server.start()
        ec2 = server.client("ec2")
        (task,) = ec2.describe_import_image_tasks(ImportTaskIds=[task_id])["ImportImageTasks"]
        assert task["Status"] == "deleted" and task["StatusMessage"].startswith("ServerError:")
        assert ec2.describe_images(Owners=["self"])["Images"] == []
        assert os.listdir(imports) == []
        images = os.path.join(data_dir, "images")
        assert not os.path.isdir(images) or os.listdir(images) == []
        # the restarted server imports as usual
        again = ec2.import_image(DiskContainers=[{"Url": "s3://crash/d.qcow2"}])["ImportTaskId"]
        assert wait_task(ec2, again)["Status"] == "completed"
    finally:
        server.stop(signal.SIGKILL)


def test_every_new_operation_keeps_tenants_apart(cloud):
    """The tenant's keys reach none of the admin's launch templates, import tasks or parameters,
    through every new operation; the tenant's own writes leave the admin's untouched."""
    admin_ec2, admin_ssm = cloud.client("ec2"), cloud.client("ssm")
    ec2, ssm = cloud.client("ec2", TENANT), cloud.client("ssm", TENANT)
    tid = admin_ec2.create_launch_template(LaunchTemplateName="byoi-private", LaunchTemplateData={
        "InstanceType": "t3.nano", "ImageId": cloud.server.tiny_image})["LaunchTemplate"]["LaunchTemplateId"]
    run = admin_ec2.run_instances(MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": tid})
    instance_id = run["Instances"][0]["InstanceId"]
    admin_ssm.put_parameter(Name="/byoi/private", Value="admin-value", Type="String")
    s3 = cloud.client("s3")
    s3.create_bucket(Bucket="byoi-iso")
    s3.upload_file(qemu_img_create(os.path.join(cloud.work, "iso.qcow2"), "qcow2", "8M"), "byoi-iso", "d.qcow2")
    task_id = admin_ec2.import_image(DiskContainers=[{"Url": "s3://byoi-iso/d.qcow2"}])["ImportTaskId"]

    def code(call, **params) -> str:
        with pytest.raises(ClientError) as caught:
            call(**params)
        return caught.value.response["Error"]["Code"]

    not_found = "InvalidLaunchTemplateId.NotFound"
    assert code(ec2.create_launch_template_version, LaunchTemplateId=tid, LaunchTemplateData={"InstanceType": "t3.micro"}) == not_found
    assert code(ec2.describe_launch_template_versions, LaunchTemplateId=tid) == not_found
    assert code(ec2.modify_launch_template, LaunchTemplateId=tid, DefaultVersion="1") == not_found
    assert code(ec2.delete_launch_template_versions, LaunchTemplateId=tid, Versions=["1"]) == not_found
    assert code(ec2.delete_launch_template, LaunchTemplateId=tid) == not_found
    assert code(ec2.run_instances, MinCount=1, MaxCount=1, LaunchTemplate={"LaunchTemplateId": tid}) == not_found
    assert code(ec2.create_tags, Resources=[tid], Tags=[{"Key": "k", "Value": "v"}]) == not_found
    assert code(ec2.get_launch_template_data, InstanceId=instance_id) == "InvalidInstanceID.NotFound"
    assert ec2.describe_launch_template_versions(Versions=["$Latest"])["LaunchTemplateVersions"] == []
    assert task_id not in [t["ImportTaskId"] for t in ec2.describe_import_image_tasks()["ImportImageTasks"]]
    assert code(ec2.describe_import_image_tasks, ImportTaskIds=[task_id]) == "InvalidConversionTaskId"
    assert code(ec2.cancel_import_task, ImportTaskId=task_id) == "InvalidConversionTaskId"
    assert code(ssm.get_parameter, Name="/byoi/private") == "ParameterNotFound"
    assert ssm.get_parameters(Names=["/byoi/private"])["InvalidParameters"] == ["/byoi/private"]
    assert ssm.get_parameters_by_path(Path="/byoi", Recursive=True)["Parameters"] == []
    assert code(ssm.get_parameter_history, Name="/byoi/private") == "ParameterNotFound"
    assert code(ssm.label_parameter_version, Name="/byoi/private", Labels=["x"]) == "ParameterNotFound"
    assert code(ssm.delete_parameter, Name="/byoi/private") == "ParameterNotFound"
    assert ssm.delete_parameters(Names=["/byoi/private"])["InvalidParameters"] == ["/byoi/private"]
    assert ssm.put_parameter(Name="/byoi/private", Value="tenant-value", Type="String")["Version"] == 1
    # the admin's things are as they were
    assert admin_ssm.get_parameter(Name="/byoi/private")["Parameter"]["Value"] == "admin-value"
    (template,) = admin_ec2.describe_launch_templates(LaunchTemplateIds=[tid])["LaunchTemplates"]
    assert template["LatestVersionNumber"] == 1 and template["DefaultVersionNumber"] == 1
    assert wait_task(admin_ec2, task_id)["Status"] == "completed"
    ssm.delete_parameter(Name="/byoi/private")
    admin_ssm.delete_parameter(Name="/byoi/private")
    admin_ec2.terminate_instances(InstanceIds=[instance_id])
    admin_ec2.delete_launch_template(LaunchTemplateId=tid)


def test_operator_import_command_refuses_what_it_cannot_convert(cloud):
    """`nimbo image import` exits 1 with VM Import's words for a file that is not the declared
    format, and registers nothing; a good file becomes a private image of the named account."""
    junk = os.path.join(cloud.work, "junk.vmdk")
    with open(junk, "wb") as fh:
        fh.write(os.urandom(70_000))
    out = cloud.server.nimbo("image", "import", junk, "--data-dir", cloud.server.data_dir, "--format", "vmdk",
                             "--no-progress", check=False)
    assert out.returncode == 1 and "Unsupported VMDK File Format" in out.stderr
    good = qemu_img_create(os.path.join(cloud.work, "good.vdi"), "vdi", "8M")
    out = cloud.server.nimbo("image", "import", good, "--data-dir", cloud.server.data_dir, "--account", TENANT,
                             "--name", "tenant-vdi", "--no-progress")
    image_id = out.stdout.strip()
    (image,) = cloud.client("ec2", TENANT).describe_images(ImageIds=[image_id])["Images"]
    assert image["Name"] == "tenant-vdi" and image["Public"] is False and image["State"] == "available"
    assert cloud.client("ec2").describe_images(Filters=[{"Name": "name", "Values": ["tenant-vdi"]}])["Images"] == []
    assert not os.listdir(os.path.join(cloud.server.data_dir, "imports"))
