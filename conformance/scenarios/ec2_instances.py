"""EC2 scenarios for key pairs, images, instances (run, describe, stop, start, reboot, terminate,
attributes, console), tags and the default VPC's reads, on whatever backend the server has.

The instance scenarios need an image to launch: a Nimbo tiny image (name ``nimbo-tiny-*``,
registered by ``--start-nimbo --nimbo-tiny-image`` or ``nimbo image build-tiny``), else the first
available x86_64 machine image the endpoint lists (moto has its own). Without one they are
skipped. Every instance launched is terminated when its scenario ends; a scenario launches at most
six, so four scenarios at once stay below EC2's default limit of 20 instances per account.
"""
from __future__ import annotations

import base64
import hashlib
import re
import threading

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from conformance import scenario

INSTANCE_TYPE = "t2.nano"
WAIT = {"Delay": 1, "MaxAttempts": 180}   # a real VM under TCG needs seconds, not minutes
MISSING_INSTANCE = "i-0123456789abcdef0"
MISSING_IMAGE = "ami-0123456789abcdef0"
STATE_CODES = {"pending": 0, "running": 16, "shutting-down": 32, "terminated": 48, "stopping": 64,
               "stopped": 80}

_images: dict[str, str | None] = {}
_images_lock = threading.Lock()


# --- helpers --------------------------------------------------------------------------------------
def launchable_image(ctx) -> str:
    """The image the instance scenarios launch (found once per endpoint), or skip."""
    with _images_lock:
        if ctx.endpoint not in _images:
            ec2 = ctx.client("ec2", validate=False)
            found = ec2.describe_images(Filters=[{"Name": "name", "Values": ["nimbo-tiny-*"]},
                                                 {"Name": "state", "Values": ["available"]}])["Images"]
            if not found:
                found = ec2.describe_images(Filters=[
                    {"Name": "architecture", "Values": ["x86_64"]},
                    {"Name": "state", "Values": ["available"]}])["Images"]
                found = [i for i in found if i.get("ImageType", "machine") == "machine"]
            found.sort(key=lambda i: i.get("CreationDate") or "", reverse=True)
            _images[ctx.endpoint] = found[0]["ImageId"] if found else None
        image_id = _images[ctx.endpoint]
    if image_id is None:
        ctx.skip("the endpoint has no image to launch (start Nimbo with --nimbo-tiny-image)")
    return image_id


def terminate_quietly(ctx, instance_ids: list[str]) -> None:
    ec2 = ctx.client("ec2", validate=False)
    for instance_id in instance_ids:
        try:
            ec2.modify_instance_attribute(InstanceId=instance_id, DisableApiTermination={"Value": False})
        except Exception:  # noqa: BLE001 - a clean-up
            pass
    ec2.terminate_instances(InstanceIds=instance_ids)


def launch(ctx, count: int = 1, **params) -> dict:
    """RunInstances (validated) of ``count`` instances, terminated when the scenario ends."""
    params.setdefault("ImageId", launchable_image(ctx))
    params.setdefault("InstanceType", INSTANCE_TYPE)
    out = ctx.call("ec2", "RunInstances", MinCount=count, MaxCount=count, **params)
    ids = [i["InstanceId"] for i in out["Instances"]]
    ctx.defer(terminate_quietly, ctx, ids)
    ctx.check_equal(len(ids), count, "instances launched")
    return out


def wait(ctx, waiter: str, instance_ids: list[str]) -> None:
    ctx.client("ec2").get_waiter(waiter).wait(InstanceIds=instance_ids, WaiterConfig=WAIT)


def instances_of(response: dict) -> list[dict]:
    return [i for r in response.get("Reservations", []) for i in r.get("Instances", [])]


def describe(ctx, instance_id: str) -> dict:
    found = instances_of(ctx.call("ec2", "DescribeInstances", InstanceIds=[instance_id]))
    ctx.check_equal([i["InstanceId"] for i in found], [instance_id], "DescribeInstances by id")
    return found[0]


def check_change(ctx, item: dict, instance_id: str, previous: str, current: str, what: str) -> None:
    ctx.check_equal(item.get("InstanceId"), instance_id, f"{what}.InstanceId")
    ctx.check_equal(item.get("PreviousState"), {"Code": STATE_CODES[previous], "Name": previous},
                    f"{what}.PreviousState")
    ctx.check_equal(item.get("CurrentState"), {"Code": STATE_CODES[current], "Name": current},
                    f"{what}.CurrentState")


def tag_spec(**tags: str) -> list[dict]:
    return [{"ResourceType": "instance", "Tags": [{"Key": k, "Value": v} for k, v in tags.items()]}]


def filtered_ids(ctx, *filters: tuple[str, list[str]], **params) -> list[str]:
    out = ctx.call("ec2", "DescribeInstances", Filters=[{"Name": n, "Values": v} for n, v in filters],
                   **params)
    return sorted(i["InstanceId"] for i in instances_of(out))


def colon_hex(digest: bytes) -> str:
    return ":".join(f"{b:02x}" for b in digest)


# --- key pairs ------------------------------------------------------------------------------------
@scenario("ec2", ["CreateKeyPair", "DescribeKeyPairs", "DeleteKeyPair"], client="boto3")
def key_pair_life(ctx):
    """CreateKeyPair gives a PEM RSA key whose fingerprint is the SHA-1 of its PKCS#8 DER; it is
    listed (with its public key on request) until DeleteKeyPair."""
    name = ctx.name("key")
    created = ctx.call("ec2", "CreateKeyPair", KeyName=name)
    ctx.defer(ctx.client("ec2", validate=False).delete_key_pair, KeyName=name)
    ctx.check_equal(created["KeyName"], name, "KeyName")
    ctx.check(str(created.get("KeyPairId", "")).startswith("key-"), f"KeyPairId {created.get('KeyPairId')}")
    material = created["KeyMaterial"]
    ctx.check(material.startswith("-----BEGIN RSA PRIVATE KEY-----"), "KeyMaterial is not a PEM RSA key")
    private = serialization.load_pem_private_key(material.encode(), password=None)
    der = private.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    ctx.check_equal(created["KeyFingerprint"], colon_hex(hashlib.sha1(der).digest()), "KeyFingerprint")
    listed = ctx.call("ec2", "DescribeKeyPairs", KeyNames=[name], IncludePublicKey=True)["KeyPairs"]
    ctx.check_equal([k["KeyName"] for k in listed], [name], "DescribeKeyPairs KeyNames")
    ctx.check_equal(listed[0].get("KeyType"), "rsa", "KeyType")
    ctx.check_equal(listed[0]["KeyFingerprint"], created["KeyFingerprint"], "listed KeyFingerprint")
    ctx.check(str(listed[0].get("PublicKey", "")).startswith("ssh-rsa "), "PublicKey is not ssh-rsa")
    by_filter = ctx.call("ec2", "DescribeKeyPairs",
                         Filters=[{"Name": "key-name", "Values": [name]}])["KeyPairs"]
    ctx.check_equal([k["KeyName"] for k in by_filter], [name], "key-name filter")
    ctx.call("ec2", "DeleteKeyPair", KeyName=name)
    left = [k["KeyName"] for k in ctx.call("ec2", "DescribeKeyPairs")["KeyPairs"]]
    ctx.check(name not in left, f"{name} still listed after DeleteKeyPair")
    ctx.call("ec2", "DeleteKeyPair", KeyName=name)   # EC2 answers success for a missing name


@scenario("ec2", "ImportKeyPair", client="boto3")
def import_key_pair(ctx):
    """ImportKeyPair: RSA fingerprints are the MD5 of the DER public key, ed25519 ones the
    base64 SHA-256 of the key blob."""
    rsa_public = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    line = rsa_public.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    name = ctx.name("rsa")
    out = ctx.call("ec2", "ImportKeyPair", KeyName=name, PublicKeyMaterial=line + b" user@host")
    ctx.defer(ctx.client("ec2", validate=False).delete_key_pair, KeyName=name)
    spki = rsa_public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    ctx.check_equal(out["KeyName"], name, "KeyName")
    ctx.check_equal(out["KeyFingerprint"], colon_hex(hashlib.md5(spki).digest()), "RSA KeyFingerprint")
    ed_line = ed25519.Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    ed_name = ctx.name("ed")
    ed = ctx.call("ec2", "ImportKeyPair", KeyName=ed_name, PublicKeyMaterial=ed_line)
    ctx.defer(ctx.client("ec2", validate=False).delete_key_pair, KeyName=ed_name)
    blob = base64.b64decode(ed_line.split()[1])
    ctx.check_equal(ed["KeyFingerprint"], base64.b64encode(hashlib.sha256(blob).digest()).decode(),
                    "ed25519 KeyFingerprint")
    types = {k["KeyName"]: k.get("KeyType") for k in
             ctx.call("ec2", "DescribeKeyPairs", KeyNames=[name, ed_name])["KeyPairs"]}
    ctx.check_equal(types, {name: "rsa", ed_name: "ed25519"}, "KeyType")


@scenario("ec2", "CreateKeyPair", client="boto3", variant="duplicate name")
def key_pair_duplicate(ctx):
    """A second key pair of the same name: InvalidKeyPair.Duplicate."""
    name = ctx.name("dup")
    ctx.call("ec2", "CreateKeyPair", KeyName=name, KeyType="ed25519")
    ctx.defer(ctx.client("ec2", validate=False).delete_key_pair, KeyName=name)
    with ctx.expect_error("InvalidKeyPair.Duplicate", 400):
        ctx.call("ec2", "CreateKeyPair", KeyName=name)


@scenario("ec2", "DescribeKeyPairs", client="boto3", variant="unknown name")
def key_pair_not_found(ctx):
    """DescribeKeyPairs of a name that does not exist: InvalidKeyPair.NotFound."""
    with ctx.expect_error("InvalidKeyPair.NotFound", 400):
        ctx.call("ec2", "DescribeKeyPairs", KeyNames=[ctx.name("nokey")])


@scenario("ec2", ["CreateKeyPair", "DescribeKeyPairs", "DeleteKeyPair"], client="awscli")
def key_pairs_cli(ctx):
    """`aws ec2 create-key-pair`, `describe-key-pairs --key-names`, `delete-key-pair`."""
    name = ctx.name("clikey")
    created = ctx.aws("ec2", "create-key-pair", "--key-name", name, "--key-type", "ed25519")
    ctx.defer(ctx.client("ec2", validate=False).delete_key_pair, KeyName=name)
    ctx.check(created["KeyMaterial"].startswith("-----BEGIN OPENSSH PRIVATE KEY-----"),
              "an ed25519 KeyMaterial is not an OpenSSH private key")
    listed = ctx.aws("ec2", "describe-key-pairs", "--key-names", name)["KeyPairs"]
    ctx.check_equal([k["KeyName"] for k in listed], [name], "describe-key-pairs")
    ctx.aws("ec2", "delete-key-pair", "--key-name", name)
    with ctx.expect_error("InvalidKeyPair.NotFound"):
        ctx.aws("ec2", "describe-key-pairs", "--key-names", name)


# --- images ---------------------------------------------------------------------------------------
@scenario("ec2", "DescribeImages", client="boto3")
def describe_images(ctx):
    """The launchable image by id: available, a machine image, with its root device mapping."""
    image_id = launchable_image(ctx)
    images = ctx.call("ec2", "DescribeImages", ImageIds=[image_id])["Images"]
    ctx.check_equal([i["ImageId"] for i in images], [image_id], "DescribeImages ImageIds")
    image = images[0]
    ctx.check_equal(image.get("State"), "available", "State")
    ctx.check(image.get("OwnerId"), "no OwnerId")
    ctx.check(image.get("Architecture") == "x86_64", f"Architecture {image.get('Architecture')}")
    root = image.get("RootDeviceName")
    if image.get("RootDeviceType") == "ebs":
        devices = [b.get("DeviceName") for b in image.get("BlockDeviceMappings", [])]
        ctx.check(root in devices, f"root device {root} not among the mappings {devices}")
    if str(image.get("Name", "")).startswith("nimbo-tiny-"):
        ctx.check_equal(image.get("Public"), True, "the tiny image's Public")


@scenario("ec2", "DescribeImages", client="boto3", variant="unknown id")
def describe_images_not_found(ctx):
    """A well-formed id that does not exist: InvalidAMIID.NotFound."""
    with ctx.expect_error("InvalidAMIID.NotFound", 400):
        ctx.call("ec2", "DescribeImages", ImageIds=[MISSING_IMAGE])


@scenario("ec2", "DescribeImages", client="boto3", variant="malformed id")
def describe_images_malformed(ctx):
    """An id that is not an image id: InvalidAMIID.Malformed."""
    with ctx.expect_error("InvalidAMIID.Malformed", 400):
        ctx.call("ec2", "DescribeImages", ImageIds=["ami-xyz"])


# --- instances ------------------------------------------------------------------------------------
@scenario("ec2", ["RunInstances", "DescribeInstances", "TerminateInstances"], client="boto3")
def run_describe_terminate(ctx):
    """RunInstances answers pending (code 0) with the tags asked for; the instance runs (16) in
    the default VPC; its user data comes back base64; terminate: 16 -> 32, then 48."""
    user_data = "#!/bin/sh\necho conformance\n"
    out = launch(ctx, UserData=user_data, TagSpecifications=tag_spec(Name=ctx.name("run")))
    ctx.check(re.fullmatch(r"r-[0-9a-f]{8,17}", out.get("ReservationId", "")),
              f"ReservationId {out.get('ReservationId')}")
    ctx.check(out.get("OwnerId"), "no OwnerId")
    (instance,) = out["Instances"]
    instance_id = instance["InstanceId"]
    ctx.check(re.fullmatch(r"i-[0-9a-f]{8,17}", instance_id), f"InstanceId {instance_id}")
    ctx.check_equal(instance["State"], {"Code": 0, "Name": "pending"}, "RunInstances State")
    ctx.check_equal(instance.get("InstanceType"), INSTANCE_TYPE, "InstanceType")
    tags = {t["Key"]: t["Value"] for t in instance.get("Tags", [])}
    ctx.check("Name" in tags, f"RunInstances' answer lacks the tags asked for: {tags}")
    wait(ctx, "instance_running", [instance_id])
    running = describe(ctx, instance_id)
    ctx.check_equal(running["State"], {"Code": 16, "Name": "running"}, "State")
    vpcs = ctx.call("ec2", "DescribeVpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    ctx.check_equal(running.get("VpcId"), vpcs[0]["VpcId"] if vpcs else None, "VpcId (the default VPC)")
    ctx.check(running.get("PrivateIpAddress"), "no PrivateIpAddress")
    ctx.check(running.get("LaunchTime"), "no LaunchTime")
    attr = ctx.call("ec2", "DescribeInstanceAttribute", InstanceId=instance_id, Attribute="userData")
    ctx.check_equal(base64.b64decode(attr.get("UserData", {}).get("Value", "")).decode(), user_data,
                    "userData")
    changes = ctx.call("ec2", "TerminateInstances", InstanceIds=[instance_id])["TerminatingInstances"]
    check_change(ctx, changes[0], instance_id, "running", "shutting-down", "TerminatingInstances")
    wait(ctx, "instance_terminated", [instance_id])
    ctx.check_equal(describe(ctx, instance_id)["State"], {"Code": 48, "Name": "terminated"},
                    "State after termination")


@scenario("ec2", ["StopInstances", "StartInstances"], client="boto3")
def stop_start(ctx):
    """Stop: running(16) -> stopping(64) -> stopped(80) with Client.UserInitiatedShutdown; start:
    stopped(80) -> pending(0) -> running(16); both idempotent in the state they lead to."""
    (instance,) = launch(ctx)["Instances"]
    instance_id = instance["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    stopping = ctx.call("ec2", "StopInstances", InstanceIds=[instance_id])["StoppingInstances"]
    check_change(ctx, stopping[0], instance_id, "running", "stopping", "StoppingInstances")
    wait(ctx, "instance_stopped", [instance_id])
    stopped = describe(ctx, instance_id)
    ctx.check_equal(stopped["State"], {"Code": 80, "Name": "stopped"}, "State")
    ctx.check_equal((stopped.get("StateReason") or {}).get("Code"), "Client.UserInitiatedShutdown",
                    "StateReason.Code")
    ctx.check(str(stopped.get("StateTransitionReason", "")).startswith("User initiated"),
              f"StateTransitionReason {stopped.get('StateTransitionReason')!r}")
    again = ctx.call("ec2", "StopInstances", InstanceIds=[instance_id])["StoppingInstances"]
    check_change(ctx, again[0], instance_id, "stopped", "stopped", "StoppingInstances (stopped)")
    starting = ctx.call("ec2", "StartInstances", InstanceIds=[instance_id])["StartingInstances"]
    check_change(ctx, starting[0], instance_id, "stopped", "pending", "StartingInstances")
    wait(ctx, "instance_running", [instance_id])
    again = ctx.call("ec2", "StartInstances", InstanceIds=[instance_id])["StartingInstances"]
    check_change(ctx, again[0], instance_id, "running", "running", "StartingInstances (running)")


@scenario("ec2", ["RebootInstances", "GetConsoleOutput"], client="boto3")
def reboot_and_console(ctx):
    """RebootInstances of a running instance succeeds and it stays running; GetConsoleOutput
    answers for it (boto3 decodes the base64 Output)."""
    (instance,) = launch(ctx)["Instances"]
    instance_id = instance["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    ctx.call("ec2", "RebootInstances", InstanceIds=[instance_id])
    ctx.check_equal(describe(ctx, instance_id)["State"]["Name"], "running", "State after a reboot")
    out = ctx.call("ec2", "GetConsoleOutput", InstanceId=instance_id)
    ctx.check_equal(out.get("InstanceId"), instance_id, "GetConsoleOutput.InstanceId")
    if not out.get("Output"):
        ctx.note("GetConsoleOutput: no output (yet)")


@scenario("ec2", "RunInstances", client="boto3", variant="ClientToken")
def run_instances_idempotent(ctx):
    """RunInstances repeated with the same ClientToken returns the first reservation and launches
    nothing; other parameters with that token: IdempotentParameterMismatch."""
    token = ctx.name("token")
    first = launch(ctx, ClientToken=token)
    again = ctx.call("ec2", "RunInstances", ImageId=launchable_image(ctx), InstanceType=INSTANCE_TYPE,
                     MinCount=1, MaxCount=1, ClientToken=token)
    ctx.defer(terminate_quietly, ctx, [i["InstanceId"] for i in again["Instances"]])
    ctx.check_equal(again["ReservationId"], first["ReservationId"], "ReservationId of the repeat")
    ctx.check_equal([i["InstanceId"] for i in again["Instances"]],
                    [i["InstanceId"] for i in first["Instances"]], "instances of the repeat")
    ctx.check_equal(len(filtered_ids(ctx, ("client-token", [token]))), 1, "instances with the token")
    with ctx.expect_error("IdempotentParameterMismatch", 400):
        ctx.call("ec2", "RunInstances", ImageId=launchable_image(ctx), InstanceType=INSTANCE_TYPE,
                 MinCount=2, MaxCount=2, ClientToken=token)


@scenario("ec2", "RunInstances", client="boto3", variant="unknown image")
def run_instances_unknown_image(ctx):
    """An image id that does not exist: InvalidAMIID.NotFound."""
    with ctx.expect_error("InvalidAMIID.NotFound", 400):
        ctx.call("ec2", "RunInstances", ImageId=MISSING_IMAGE, MinCount=1, MaxCount=1,
                 InstanceType=INSTANCE_TYPE)


@scenario("ec2", "RunInstances", client="boto3", variant="unknown key pair")
def run_instances_unknown_key(ctx):
    """A key name that does not exist: InvalidKeyPair.NotFound."""
    image_id = launchable_image(ctx)
    with ctx.expect_error("InvalidKeyPair.NotFound", 400):
        out = ctx.call("ec2", "RunInstances", ImageId=image_id, MinCount=1, MaxCount=1,
                       InstanceType=INSTANCE_TYPE, KeyName=ctx.name("nokey"))
        ctx.defer(terminate_quietly, ctx, [i["InstanceId"] for i in out["Instances"]])


@scenario("ec2", "RunInstances", client="boto3", variant="unknown instance type")
def run_instances_unknown_type(ctx):
    """An instance type that does not exist: InvalidParameterValue ("Invalid value 'x' for
    InstanceType.")."""
    image_id = launchable_image(ctx)
    with ctx.expect_error("InvalidParameterValue", 400) as caught:
        out = ctx.call("ec2", "RunInstances", ImageId=image_id, MinCount=1, MaxCount=1,
                       InstanceType="t9.mega")
        ctx.defer(terminate_quietly, ctx, [i["InstanceId"] for i in out["Instances"]])
    ctx.check("t9.mega" in caught.message, f"the message does not name the type: {caught.message!r}")


@scenario("ec2", "RunInstances", client="boto3", variant="DryRun")
def run_instances_dry_run(ctx):
    """DryRun=true: DryRunOperation (412), nothing launched."""
    image_id = launchable_image(ctx)
    with ctx.expect_error("DryRunOperation", 412):
        out = ctx.call("ec2", "RunInstances", ImageId=image_id, MinCount=1, MaxCount=1,
                       InstanceType=INSTANCE_TYPE, DryRun=True)
        ctx.defer(terminate_quietly, ctx, [i["InstanceId"] for i in out["Instances"]])


@scenario("ec2", "DescribeInstances", client="boto3", variant="unknown id")
def describe_instances_not_found(ctx):
    """A well-formed instance id that does not exist: InvalidInstanceID.NotFound, for describe
    and for the state changes."""
    with ctx.expect_error("InvalidInstanceID.NotFound", 400):
        ctx.call("ec2", "DescribeInstances", InstanceIds=[MISSING_INSTANCE])
    with ctx.expect_error("InvalidInstanceID.NotFound", 400):
        ctx.call("ec2", "StopInstances", InstanceIds=[MISSING_INSTANCE])
    with ctx.expect_error("InvalidInstanceID.NotFound", 400):
        ctx.call("ec2", "TerminateInstances", InstanceIds=[MISSING_INSTANCE])


@scenario("ec2", "DescribeInstances", client="boto3", variant="malformed id")
def describe_instances_malformed(ctx):
    """An id that is not an instance id: InvalidInstanceID.Malformed."""
    with ctx.expect_error("InvalidInstanceID.Malformed", 400):
        ctx.call("ec2", "DescribeInstances", InstanceIds=["i-xyz"])


@scenario("ec2", "DescribeInstances", client="boto3", variant="filters")
def describe_instances_filters(ctx):
    """tag:KEY, tag-key, instance-type and instance-state-name filters (values ORed, filters
    ANDed, * and ? wildcards); an unknown filter name is InvalidParameterValue."""
    suite = ctx.name("filters")
    web = [i["InstanceId"] for i in launch(ctx, 2, TagSpecifications=tag_spec(Suite=suite, Role="web"))["Instances"]]
    db = [i["InstanceId"] for i in launch(ctx, 1, InstanceType="t3.micro",
                                          TagSpecifications=tag_spec(Suite=suite, Role="db"))["Instances"]]
    wait(ctx, "instance_running", web + db)
    mine = ("tag:Suite", [suite])
    ctx.check_equal(filtered_ids(ctx, mine), sorted(web + db), "tag:Suite")
    ctx.check_equal(filtered_ids(ctx, mine, ("tag:Role", ["web"])), sorted(web), "tag:Role=web")
    ctx.check_equal(filtered_ids(ctx, mine, ("tag:Role", ["w*", "d?"])), sorted(web + db), "wildcards")
    ctx.check_equal(filtered_ids(ctx, ("tag-key", ["Suite"]), mine), sorted(web + db), "tag-key")
    ctx.check_equal(filtered_ids(ctx, mine, ("instance-type", ["t3.micro"])), db, "instance-type")
    ctx.check_equal(filtered_ids(ctx, mine, ("instance-state-name", ["running"])), sorted(web + db),
                    "instance-state-name=running")
    ctx.check_equal(filtered_ids(ctx, mine, ("instance-state-name", ["stopped"])), [],
                    "instance-state-name=stopped")
    with ctx.expect_error("InvalidParameterValue", 400):
        ctx.call("ec2", "DescribeInstances", Filters=[{"Name": "no-such-filter", "Values": ["x"]}])


@scenario("ec2", "DescribeInstances", client="boto3", variant="pagination")
def describe_instances_pagination(ctx):
    """MaxResults=5 over six instances: a page of five with a NextToken, then one without; the
    two pages together hold each instance once."""
    suite = ctx.name("pages")
    ids = [i["InstanceId"] for i in launch(ctx, 6, TagSpecifications=tag_spec(Suite=suite))["Instances"]]
    flt = [{"Name": "tag:Suite", "Values": [suite]}]
    first = ctx.call("ec2", "DescribeInstances", Filters=flt, MaxResults=5)
    ctx.check_equal(len(instances_of(first)), 5, "instances on the first page")
    ctx.check(first.get("NextToken"), "no NextToken after a full page")
    second = ctx.call("ec2", "DescribeInstances", Filters=flt, MaxResults=5, NextToken=first["NextToken"])
    ctx.check_equal(len(instances_of(second)), 1, "instances on the second page")
    ctx.check(not second.get("NextToken"), "a NextToken after the last page")
    seen = [i["InstanceId"] for page in (first, second) for i in instances_of(page)]
    ctx.check_equal(sorted(seen), sorted(ids), "the pages together")
    with ctx.expect_error("InvalidParameterCombination", 400):
        ctx.call("ec2", "DescribeInstances", InstanceIds=ids[:1], MaxResults=5)


@scenario("ec2", ["ModifyInstanceAttribute", "DescribeInstanceAttribute"], client="boto3")
def instance_attributes(ctx):
    """disableApiTermination makes TerminateInstances OperationNotPermitted until cleared; the
    instance type changes only while stopped (IncorrectInstanceState while running)."""
    (instance,) = launch(ctx)["Instances"]
    instance_id = instance["InstanceId"]
    wait(ctx, "instance_running", [instance_id])
    ctx.call("ec2", "ModifyInstanceAttribute", InstanceId=instance_id, DisableApiTermination={"Value": True})
    attr = ctx.call("ec2", "DescribeInstanceAttribute", InstanceId=instance_id, Attribute="disableApiTermination")
    ctx.check_equal(attr.get("DisableApiTermination"), {"Value": True}, "DisableApiTermination")
    with ctx.expect_error("OperationNotPermitted", 400):
        ctx.call("ec2", "TerminateInstances", InstanceIds=[instance_id])
    ctx.call("ec2", "ModifyInstanceAttribute", InstanceId=instance_id, DisableApiTermination={"Value": False})
    with ctx.expect_error("IncorrectInstanceState", 400):
        ctx.call("ec2", "ModifyInstanceAttribute", InstanceId=instance_id, InstanceType={"Value": "t3.micro"})
    attr = ctx.call("ec2", "DescribeInstanceAttribute", InstanceId=instance_id, Attribute="instanceType")
    ctx.check_equal(attr.get("InstanceType"), {"Value": INSTANCE_TYPE}, "InstanceType attribute")


@scenario("ec2", ["RunInstances", "DescribeInstances", "TerminateInstances"], client="awscli")
def instances_cli(ctx):
    """`aws ec2 run-instances --user-data file://...`, `aws ec2 wait instance-running`,
    `describe-instances --filters`, `terminate-instances`, `wait instance-terminated`."""
    image_id = launchable_image(ctx)
    name = ctx.name("cli")
    script = ctx.file("boot.sh", "#!/bin/sh\necho from aws-cli\n")
    out = ctx.aws("ec2", "run-instances", "--image-id", image_id, "--count", "1", "--instance-type",
                  INSTANCE_TYPE, "--user-data", f"file://{script}", "--tag-specifications",
                  f"ResourceType=instance,Tags=[{{Key=Name,Value={name}}}]")
    instance_id = out["Instances"][0]["InstanceId"]
    ctx.defer(terminate_quietly, ctx, [instance_id])
    ctx.aws("ec2", "wait", "instance-running", "--instance-ids", instance_id)
    found = ctx.aws("ec2", "describe-instances", "--filters", f"Name=tag:Name,Values={name}",
                    "Name=instance-state-name,Values=running")
    ctx.check_equal([i["InstanceId"] for i in instances_of(found.json)], [instance_id],
                    "describe-instances --filters")
    attr = ctx.aws("ec2", "describe-instance-attribute", "--instance-id", instance_id, "--attribute", "userData")
    ctx.check_equal(base64.b64decode(attr["UserData"]["Value"]), b"#!/bin/sh\necho from aws-cli\n",
                    "userData from file://")
    gone = ctx.aws("ec2", "terminate-instances", "--instance-ids", instance_id)
    ctx.check_equal(gone["TerminatingInstances"][0]["CurrentState"]["Name"], "shutting-down",
                    "terminate-instances CurrentState")
    ctx.aws("ec2", "wait", "instance-terminated", "--instance-ids", instance_id)


# --- tags -----------------------------------------------------------------------------------------
@scenario("ec2", ["CreateTags", "DescribeTags", "DeleteTags"], client="boto3")
def instance_tags(ctx):
    """CreateTags on an instance; DescribeTags by resource-id and key; DeleteTags with a value
    that does not match deletes nothing, with the key alone deletes it."""
    (instance,) = launch(ctx)["Instances"]
    instance_id = instance["InstanceId"]
    ctx.call("ec2", "CreateTags", Resources=[instance_id], Tags=[{"Key": "Team", "Value": "core"},
                                                                 {"Key": "Env", "Value": "test"}])

    def tags() -> dict[str, str]:
        out = ctx.call("ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": [instance_id]}])
        for tag in out["Tags"]:
            ctx.check_equal(tag.get("ResourceType"), "instance", f"ResourceType of tag {tag.get('Key')}")
        return {t["Key"]: t["Value"] for t in out["Tags"]}
    ctx.check_equal(tags(), {"Team": "core", "Env": "test"}, "tags after CreateTags")
    by_key = ctx.call("ec2", "DescribeTags", Filters=[{"Name": "resource-id", "Values": [instance_id]},
                                                      {"Name": "key", "Values": ["Team"]}])["Tags"]
    ctx.check_equal([(t["Key"], t["Value"]) for t in by_key], [("Team", "core")], "key filter")
    ctx.call("ec2", "DeleteTags", Resources=[instance_id], Tags=[{"Key": "Team", "Value": "other"}])
    ctx.check_equal(tags(), {"Team": "core", "Env": "test"}, "tags after deleting a non-matching value")
    ctx.call("ec2", "DeleteTags", Resources=[instance_id], Tags=[{"Key": "Team"}])
    ctx.check_equal(tags(), {"Env": "test"}, "tags after deleting a key")
    with ctx.expect_error("InvalidInstanceID.NotFound", 400):
        ctx.call("ec2", "CreateTags", Resources=[MISSING_INSTANCE], Tags=[{"Key": "a", "Value": "b"}])


# --- the default VPC ------------------------------------------------------------------------------
@scenario("ec2", ["DescribeVpcs", "DescribeSubnets", "DescribeSecurityGroups"], client="boto3")
def default_network(ctx):
    """The default VPC (172.31.0.0/16), a default /20 subnet per zone inside it, and its default
    security group."""
    vpcs = ctx.call("ec2", "DescribeVpcs", Filters=[{"Name": "is-default", "Values": ["true"]}])["Vpcs"]
    ctx.check_equal(len(vpcs), 1, "default VPCs")
    vpc = vpcs[0]
    ctx.check_equal(vpc.get("CidrBlock"), "172.31.0.0/16", "default VPC CidrBlock")
    ctx.check_equal(vpc.get("State"), "available", "VPC State")
    subnets = ctx.call("ec2", "DescribeSubnets", Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                                                          {"Name": "default-for-az", "Values": ["true"]}])["Subnets"]
    zones = [z["ZoneName"] for z in ctx.call("ec2", "DescribeAvailabilityZones")["AvailabilityZones"]]
    ctx.check_equal(sorted(s["AvailabilityZone"] for s in subnets), sorted(zones), "a default subnet per zone")
    for subnet in subnets:
        ctx.check(subnet["CidrBlock"].startswith("172.31.") and subnet["CidrBlock"].endswith("/20"),
                  f"default subnet {subnet['CidrBlock']}")
        ctx.check_equal(subnet.get("MapPublicIpOnLaunch"), True, "MapPublicIpOnLaunch")
    groups = ctx.call("ec2", "DescribeSecurityGroups",
                      Filters=[{"Name": "vpc-id", "Values": [vpc["VpcId"]]},
                               {"Name": "group-name", "Values": ["default"]}])["SecurityGroups"]
    ctx.check_equal(len(groups), 1, "default security groups")
    ctx.check_equal(groups[0].get("Description"), "default VPC security group", "Description")
    egress = groups[0].get("IpPermissionsEgress") or []
    ctx.check(any(p.get("IpProtocol") == "-1" and {"CidrIp": "0.0.0.0/0"} in p.get("IpRanges", [])
                  for p in egress), f"no allow-all egress rule: {egress}")
