"""S3 through the real clients people point at a private endpoint: aws-cli v2, rclone, s3cmd
(SigV4 and SigV2), pyarrow (the AWS C++ SDK), s3fs (aiobotocore) and curl (presigned URLs and
browser-style POST uploads).

Each scenario skips when its client is not installed, and checks bytes both ways: what the client
uploaded is read back with boto3 (or its multipart ETag computed locally), what it downloaded is
compared with what was put. Columns: ``awscli2``, ``rclone``, ``s3cmd``, ``pyarrow``, ``s3fs``,
``curl``.
"""
from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import re
import shutil
import subprocess
import urllib.parse

from conformance import awscli_runner, scenario, wire
from conformance.context import CallRecord
from conformance.errors import AwsCliError, ScenarioFailure, Skip
from conformance.scenarios.s3 import MiB, get_bytes, list_keys, md5_etag, put, sha256_of
from conformance.scenarios.s3_cli import LS_OBJECT_RE, ODD_TREE, _read_tree, _write_tree
from conformance.scenarios._client_tools import (PYTHON_VARIABLES, error_lines, curl, need_binary,
                                                 run_tool, tool_env)
from conformance.shapes import AWSCLI, Problem, validate_output

AWSCLI2, RCLONE, S3CMD = "awscli2", "rclone", "s3cmd"
PYARROW, S3FS = "pyarrow", "s3fs"

# Where aws-cli v2 lives: Debian's package, AWS's installer; `NIMBO_AWSCLI2=/path/aws` overrides.
AWSCLI2_CANDIDATES = ("/usr/bin/aws", "/usr/local/bin/aws")


# --- hashes ------------------------------------------------------------------------------------
def multipart_etag(path: str, part_size: int) -> str:
    """The ETag S3 gives an object uploaded from ``path`` in parts of ``part_size``: the MD5 of
    the parts' MD5s, then ``-`` and the number of parts."""
    digests = []
    with open(path, "rb") as fh:
        for part in iter(lambda: fh.read(part_size), b""):
            digests.append(hashlib.md5(part).digest())
    return f'"{hashlib.md5(b"".join(digests)).hexdigest()}-{len(digests)}"'


def stream_sha256(body) -> str:
    digest = hashlib.sha256()
    for block in iter(lambda: body.read(MiB), b""):
        digest.update(block)
    return digest.hexdigest()


def object_sha256(ctx, bucket: str, key: str) -> str:
    """The SHA-256 of an object as boto3 downloads it (streamed)."""
    return stream_sha256(ctx.call("s3", "GetObject", Bucket=bucket, Key=key)["Body"])


def random_file(ctx, relpath: str, size: int) -> str:
    """A file of ``size`` random bytes under the work directory, written a MiB at a time."""
    path = os.path.join(ctx.workdir, relpath)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as fh:
        left = size
        while left:
            chunk = os.urandom(min(MiB, left))
            fh.write(chunk)
            left -= len(chunk)
    return path


def _gone(ctx, bucket: str) -> None:
    with ctx.expect_error(("404", "NoSuchBucket"), 404):
        ctx.call("s3", "HeadBucket", Bucket=bucket)


def _delete_if_there(ctx, bucket: str) -> None:
    try:
        ctx.delete_bucket(bucket)
    except Exception:  # noqa: BLE001 - the client under test deleted it already
        pass


def _new_bucket_name(ctx, hint: str) -> str:
    """A bucket name for a client to create itself (deleted at the end if it is still there)."""
    name = ctx.name(hint)
    ctx.defer(_delete_if_there, ctx, name)
    return name


def _host_port(ctx) -> str:
    parts = urllib.parse.urlsplit(ctx.endpoint)
    return parts.netloc


def _https(ctx) -> bool:
    return ctx.endpoint.startswith("https:")


# --- aws-cli v2 --------------------------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def awscli2_command() -> tuple[str, ...] | None:
    """The aws-cli v2 executable (``aws --version`` says ``aws-cli/2``), or None."""
    override = os.environ.get("NIMBO_AWSCLI2")
    candidates = [override] if override else [*AWSCLI2_CANDIDATES, shutil.which("aws")]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("AWS_") and k not in PYTHON_VARIABLES}
    for path in candidates:
        if not path or not os.access(path, os.X_OK):
            continue
        try:
            proc = subprocess.run([path, "--version"], capture_output=True, text=True, env=env,
                                  timeout=60)
        except (OSError, subprocess.TimeoutExpired):
            continue
        if (proc.stdout + proc.stderr).strip().startswith("aws-cli/2"):
            return (path,)
    return None


def aws2(ctx, *args: str, validate: bool = True) -> awscli_runner.AwsResult:
    """``aws ARGS`` with aws-cli v2, like ``ctx.aws`` (v1): API commands' JSON is validated
    against the shapes (v2 is told to print timestamps as the wire wrote them, as v1 does)."""
    command = awscli2_command()
    if not command:
        raise Skip("aws-cli v2 is not installed (apt-get install awscli, or set NIMBO_AWSCLI2)")
    args = [str(a) for a in args]
    config = os.path.join(ctx.workdir, ".aws2-config")
    if not os.path.exists(config):
        with open(config, "w") as fh:
            fh.write("[default]\ncli_timestamp_format = wire\n")
    env = awscli_runner.clean_env(ctx.access_key, ctx.secret_key, ctx.region, ctx.workdir,
                                  ctx.run.target.session_token, ctx.run.retries)
    for name in PYTHON_VARIABLES:
        env.pop(name, None)
    env.update({"AWS_CONFIG_FILE": config, "AWS_PAGER": ""})
    resolved = awscli_runner.resolve_operation(args)
    label = resolved[1].name if resolved else "aws " + " ".join(args[:2])
    try:
        result = awscli_runner.run(list(command), args, ctx.endpoint, env, ctx.workdir,
                                   ctx.run.timeout, ctx.run.target.verify_ssl)
    except AwsCliError as exc:
        ctx.recorder.call(CallRecord(AWSCLI2, "s3", label, None, exit_code=exc.returncode))
        raise
    ctx.recorder.call(CallRecord(AWSCLI2, "s3", label, None, exit_code=0))
    if resolved is None:
        return result
    _, model = resolved
    result.operation = model.name
    root = f"{model.name} (aws-cli v2)"
    try:
        result.json = awscli_runner.parse_json(result.stdout)
    except ValueError:
        ctx.recorder.add([Problem(root, f"output is not JSON: {result.stdout[:80]!r}")])
        return result
    if validate and model.output_shape is not None:
        shape = model.output_shape
        data = result.json or {}
        payload = shape.serialization.get("payload") if model.has_streaming_output else None
        if payload:
            data = {k: v for k, v in data.items() if k != payload}
        ctx.recorder.add(validate_output(shape, data, root, AWSCLI, wire.protocol_of(model)))
    return result


@scenario("s3", ["CreateBucket", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                 "GetObject", "DeleteBucket"], client=AWSCLI2, name="awscli2_cp_100mib")
def awscli2_cp_100mib(ctx):
    """aws-cli v2: `s3 mb`, `s3 cp` of 100 MiB up (13 parts of 8 MiB: the ETag is checked against
    the parts' MD5s) and back down (SHA-256 compared), `s3 rb --force`."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    bucket = _new_bucket_name(ctx, "awscli2-cp")
    out = aws2(ctx, "s3", "mb", f"s3://{bucket}").stdout
    ctx.check(f"make_bucket: {bucket}" in out, f"`aws s3 mb` printed {out.strip()!r}")
    size = 100 * MiB
    src = random_file(ctx, "up.bin", size)
    aws2(ctx, "s3", "cp", "--no-progress", src, f"s3://{bucket}/big/100MiB.bin")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="big/100MiB.bin")
    ctx.check_equal(head.get("ContentLength"), size, "ContentLength")
    ctx.check_equal(head.get("ETag"), multipart_etag(src, 8 * MiB),
                    "ETag (MD5 of the 13 parts' MD5s)")
    dest = os.path.join(ctx.workdir, "down.bin")
    aws2(ctx, "s3", "cp", "--no-progress", f"s3://{bucket}/big/100MiB.bin", dest)
    ctx.check(os.path.getsize(dest) == size and sha256_of(dest) == sha256_of(src),
              "the 100 MiB file downloaded differs from the one uploaded")
    aws2(ctx, "s3", "rb", "--force", f"s3://{bucket}")
    _gone(ctx, bucket)


@scenario("s3", ["PutObject", "ListObjectsV2", "GetObject"], client=AWSCLI2, variant="sync",
          name="awscli2_sync_odd_names")
def awscli2_sync_odd_names(ctx):
    """aws-cli v2: `s3 sync` of a tree with spaces, '+', '%', '&', '=' and unicode in its names up
    (each object read back with boto3) and down; a second sync uploads nothing."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    bucket = ctx.bucket("awscli2-sync")
    local = _write_tree(ctx, "tree", ODD_TREE)
    aws2(ctx, "s3", "sync", "--no-progress", local, f"s3://{bucket}/t/")
    ctx.check_equal(sorted(list_keys(ctx, bucket)), sorted("t/" + k for k in ODD_TREE),
                    "keys after sync")
    for relpath, data in ODD_TREE.items():
        ctx.check(get_bytes(ctx, bucket, "t/" + relpath)[1] == data,
                  f"t/{relpath} holds other bytes than the file synced")
    again = aws2(ctx, "s3", "sync", "--no-progress", local, f"s3://{bucket}/t/").stdout
    uploads = [line for line in again.splitlines() if line.startswith("upload")]
    ctx.check(not uploads, f"a second sync of an unchanged tree uploaded again: {uploads[:3]}")
    back = os.path.join(ctx.workdir, "back")
    aws2(ctx, "s3", "sync", "--no-progress", f"s3://{bucket}/t/", back)
    ctx.check_equal(_read_tree(back), ODD_TREE, "the tree synced back down")


@scenario("s3", "ListObjectsV2", client=AWSCLI2, variant="ls --recursive",
          name="awscli2_ls_recursive")
def awscli2_ls_recursive(ctx):
    """aws-cli v2: `s3 ls --recursive` shows every key (odd ones too) with its size."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    bucket = ctx.bucket("awscli2-ls")
    keys = {"a/1.txt": b"1", "a/b/22.txt": b"22", "top file+&=.txt": b"333",
            "unicod\u00e9/\u2603.txt": b"4444"}
    for key, data in keys.items():
        put(ctx, bucket, key, data)
    shown = {}
    for line in aws2(ctx, "s3", "ls", "--recursive", f"s3://{bucket}/").stdout.splitlines():
        match = LS_OBJECT_RE.match(line)
        ctx.check(match, f"`aws s3 ls --recursive` printed an odd line: {line!r}")
        shown[match.group(2)] = int(match.group(1))
    ctx.check_equal(shown, {k: len(v) for k, v in keys.items()}, "keys and sizes shown")


@scenario("s3", "DeleteObject", client=AWSCLI2, variant="rm --recursive",
          name="awscli2_rm_recursive")
def awscli2_rm_recursive(ctx):
    """aws-cli v2: `s3 rm --recursive` under a prefix deletes that prefix's keys and no others."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    bucket = ctx.bucket("awscli2-rm")
    for key in ("gone/1", "gone/sub/2", "gone/odd name+%&=.txt", "kept/3", "gone-not/4"):
        put(ctx, bucket, key, b"x")
    aws2(ctx, "s3", "rm", "--recursive", f"s3://{bucket}/gone/")
    ctx.check_equal(list_keys(ctx, bucket), ["gone-not/4", "kept/3"], "keys left")


@scenario("s3", "GetObject", client=AWSCLI2, variant="presigned", name="awscli2_presign")
def awscli2_presign(ctx):
    """aws-cli v2: a URL from `s3 presign` (SigV4) fetched with curl gives the object's bytes."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    need_binary("curl")
    bucket = ctx.bucket("awscli2-presign")
    data = os.urandom(3000)
    put(ctx, bucket, "odd key+1&=.bin", data)
    url = aws2(ctx, "s3", "presign", f"s3://{bucket}/odd key+1&=.bin", "--expires-in", "300")
    url = url.stdout.strip()
    ctx.check(url.startswith(ctx.endpoint), f"the presigned URL is not on the endpoint: {url}")
    ctx.check("X-Amz-Signature=" in url, f"aws-cli v2 did not presign with SigV4: {url}")
    response = curl(ctx, url, client=AWSCLI2)
    ctx.check_equal(response.status, 200, f"presigned GET status ({response.body[:200]!r})")
    ctx.check(response.body == data, "the presigned GET returned other bytes")


@scenario("s3", ["PutObject", "HeadObject", "ListObjectsV2", "GetObject", "DeleteObjects"],
          client=AWSCLI2, name="awscli2_s3api")
def awscli2_s3api(ctx):
    """aws-cli v2: `s3api put-object / head-object / list-objects-v2 / get-object /
    delete-objects`, each one's JSON checked against the shapes, the bytes compared."""
    awscli2_command() or ctx.skip("aws-cli v2 is not installed")
    bucket = ctx.bucket("awscli2-s3api")
    data = os.urandom(4096)
    src = ctx.file("in.bin", data)
    key = "dir/k +&=%.bin"
    out = aws2(ctx, "s3api", "put-object", "--bucket", bucket, "--key", key, "--body", src,
               "--metadata", "colour=blue")
    ctx.check_equal(out.get("ETag"), md5_etag(data), "put-object ETag")
    ctx.check(get_bytes(ctx, bucket, key)[1] == data, "the object holds other bytes than put")
    head = aws2(ctx, "s3api", "head-object", "--bucket", bucket, "--key", key)
    ctx.check_equal(head.get("ContentLength"), len(data), "head-object ContentLength")
    ctx.check_equal(head.get("Metadata"), {"colour": "blue"}, "head-object Metadata")
    put(ctx, bucket, "other", b"o")
    listing = aws2(ctx, "s3api", "list-objects-v2", "--bucket", bucket)
    ctx.check_equal([c["Key"] for c in listing.get("Contents", [])], [key, "other"], "Contents")
    dest = os.path.join(ctx.workdir, "out.bin")
    got = aws2(ctx, "s3api", "get-object", "--bucket", bucket, "--key", key, dest)
    ctx.check_equal(got.get("ContentLength"), len(data), "get-object ContentLength")
    with open(dest, "rb") as fh:
        ctx.check(fh.read() == data, "get-object wrote other bytes")
    request = json.dumps({"Objects": [{"Key": key}, {"Key": "other"}, {"Key": "never"}]})
    deleted = aws2(ctx, "s3api", "delete-objects", "--bucket", bucket, "--delete", request)
    ctx.check_equal(sorted(d["Key"] for d in deleted.get("Deleted", [])),
                    sorted([key, "other", "never"]), "delete-objects Deleted")
    ctx.check_equal(list_keys(ctx, bucket), [], "keys after delete-objects")


# --- rclone ------------------------------------------------------------------------------------
def rclone(ctx, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    """``rclone ARGS`` with a remote ``nimbo:`` configured by environment variables only."""
    exe = need_binary("rclone")
    config = os.path.join(ctx.workdir, "rclone.conf")
    if not os.path.exists(config):
        open(config, "w").close()
    extra = {"RCLONE_CONFIG": config, "RCLONE_CONFIG_NIMBO_TYPE": "s3",
             "RCLONE_CONFIG_NIMBO_PROVIDER": "Other", "RCLONE_CONFIG_NIMBO_ENDPOINT": ctx.endpoint,
             "RCLONE_CONFIG_NIMBO_ACCESS_KEY_ID": ctx.access_key,
             "RCLONE_CONFIG_NIMBO_SECRET_ACCESS_KEY": ctx.secret_key,
             "RCLONE_CONFIG_NIMBO_REGION": ctx.region}
    if ctx.run.target.session_token:
        extra["RCLONE_CONFIG_NIMBO_SESSION_TOKEN"] = ctx.run.target.session_token
    argv = [exe, *args, "--retries", str(max(1, ctx.run.retries)), "--low-level-retries", "1"]
    if not ctx.run.target.verify_ssl:
        argv.append("--no-check-certificate")
    return run_tool(ctx, RCLONE, argv, tool_env(ctx, **extra), "rclone " + args[0], check)


@scenario("s3", ["CreateBucket", "PutObject", "CreateMultipartUpload", "UploadPart",
                 "CompleteMultipartUpload", "ListObjects", "HeadObject", "GetObject",
                 "DeleteObject", "DeleteBucket"], client=RCLONE, name="rclone_tree")
def rclone_tree(ctx):
    """rclone (Go SDK signer): mkdir, copy a tree with odd names and a 12 MiB file (over a 5 MiB
    upload cutoff: 3 parts) up, lsf/ls, check (hashes), copy back, delete, rmdir."""
    need_binary("rclone")
    bucket = _new_bucket_name(ctx, "rclone")
    rclone(ctx, "mkdir", f"nimbo:{bucket}")
    ctx.call("s3", "HeadBucket", Bucket=bucket)
    tree = dict(ODD_TREE)
    local = _write_tree(ctx, "tree", tree)
    big = random_file(ctx, "tree/big.bin", 12 * MiB)
    with open(big, "rb") as fh:
        tree["big.bin"] = fh.read()
    rclone(ctx, "copy", "--s3-upload-cutoff", "5M", "--s3-chunk-size", "5M", local,
           f"nimbo:{bucket}/t")
    ctx.check_equal(sorted(list_keys(ctx, bucket)), sorted("t/" + k for k in tree),
                    "keys after rclone copy")
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="t/big.bin")
    ctx.check_equal(head.get("ETag"), multipart_etag(big, 5 * MiB),
                    "big.bin's ETag (3 parts of 5 MiB)")
    ctx.check(head.get("Metadata", {}).get("md5chksum"),
              f"rclone's md5chksum metadata is missing: {head.get('Metadata')}")
    for relpath, data in tree.items():
        if relpath == "big.bin":
            ctx.check(object_sha256(ctx, bucket, "t/big.bin") == sha256_of(big),
                      "t/big.bin holds other bytes than the file copied up")
        else:
            ctx.check(get_bytes(ctx, bucket, "t/" + relpath)[1] == data,
                      f"t/{relpath} holds other bytes than the file copied up")
    files = [line for line in rclone(ctx, "lsf", "-R", f"nimbo:{bucket}/t").stdout.splitlines()
             if line and not line.endswith("/")]
    ctx.check_equal(sorted(files), sorted(tree), "`rclone lsf -R` files")
    sizes = {}
    for line in rclone(ctx, "ls", f"nimbo:{bucket}").stdout.splitlines():
        size, _, path = line.strip().partition(" ")
        sizes[path] = int(size)
    ctx.check_equal(sizes, {"t/" + k: len(v) for k, v in tree.items()}, "`rclone ls` sizes")
    checked = rclone(ctx, "check", local, f"nimbo:{bucket}/t", check=False)
    ctx.check(checked.returncode == 0, f"`rclone check` exited {checked.returncode}: "
                                       f"{error_lines(checked.stderr)}")
    ctx.check("hashes could not be checked" not in checked.stderr,
              f"`rclone check` compared no hashes: {error_lines(checked.stderr)}")
    back = os.path.join(ctx.workdir, "back")
    rclone(ctx, "copy", f"nimbo:{bucket}/t", back)
    ctx.check(_read_tree(back) == tree, "the tree rclone copied back differs from the one up")
    rclone(ctx, "delete", f"nimbo:{bucket}")
    ctx.check_equal(list_keys(ctx, bucket), [], "keys after `rclone delete`")
    rclone(ctx, "rmdir", f"nimbo:{bucket}")
    _gone(ctx, bucket)


# --- s3cmd -------------------------------------------------------------------------------------
S3CMD_LS_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}\s+(\d+)\s+(s3://.+)$")


def s3cmd(ctx, *args: str, sigv2: bool = False) -> subprocess.CompletedProcess:
    """``s3cmd ARGS`` on the endpoint (path-style: --host-bucket is the endpoint itself); the keys
    are in a config file of the scenario's own, not on the command line."""
    exe = need_binary("s3cmd")
    config = os.path.join(ctx.workdir, "s3cmd.cfg")
    if not os.path.exists(config):
        lines = ["[default]", f"access_key = {ctx.access_key}", f"secret_key = {ctx.secret_key}"]
        if ctx.run.target.session_token:
            lines.append(f"access_token = {ctx.run.target.session_token}")
        fd = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    host = _host_port(ctx)
    argv = [exe, "-c", config, f"--host={host}", f"--host-bucket={host}",
            f"--region={ctx.region}"]
    argv.append("--ssl" if _https(ctx) else "--no-ssl")
    if _https(ctx) and not ctx.run.target.verify_ssl:
        argv.append("--no-check-certificate")
    if sigv2:
        argv.append("--signature-v2")
    argv += list(args)
    proc = run_tool(ctx, S3CMD, argv, tool_env(ctx), "s3cmd " + args[0])
    if "WARNING: MD5 signatures do not match" in proc.stderr:
        raise ScenarioFailure(f"`s3cmd {args[0]}`: {error_lines(proc.stderr)}")
    return proc


def _s3cmd_round_trip(ctx, sigv2: bool) -> None:
    need_binary("s3cmd")
    bucket = _new_bucket_name(ctx, "s3cmd-v2" if sigv2 else "s3cmd")
    s3cmd(ctx, "mb", f"s3://{bucket}", sigv2=sigv2)
    ctx.call("s3", "HeadBucket", Bucket=bucket)
    big_name, small_name = "dir/big file+1.bin", "unicod\u00e9/\u2603 &=%.txt"
    big = random_file(ctx, f"up/{big_name}", 12 * MiB)
    ctx.file(f"up/{small_name}", "snow \u2603\n")
    local = _read_tree(os.path.join(ctx.workdir, "up"))
    s3cmd(ctx, "put", "--recursive", "--multipart-chunk-size-mb=5",
          os.path.join(ctx.workdir, "up") + "/", f"s3://{bucket}/t/", sigv2=sigv2)
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key=f"t/{big_name}")
    ctx.check_equal(head.get("ETag"), multipart_etag(big, 5 * MiB),
                    "the 12 MiB file's ETag (3 parts of 5 MiB)")
    for name, data in local.items():
        ctx.check(object_sha256(ctx, bucket, f"t/{name}") == hashlib.sha256(data).hexdigest(),
                  f"t/{name} holds other bytes than the file put")
    listed = {}
    for line in s3cmd(ctx, "ls", "-r", f"s3://{bucket}", sigv2=sigv2).stdout.splitlines():
        match = S3CMD_LS_RE.match(line.strip())
        ctx.check(match, f"`s3cmd ls -r` printed an odd line: {line!r}")
        listed[match.group(2)] = int(match.group(1))
    ctx.check_equal(listed, {f"s3://{bucket}/t/{k}": len(v) for k, v in local.items()},
                    "`s3cmd ls -r`")
    back = os.path.join(ctx.workdir, "back")
    os.makedirs(back)
    s3cmd(ctx, "get", "--recursive", f"s3://{bucket}/t/", back + "/", sigv2=sigv2)
    ctx.check(_read_tree(back) == local, "`s3cmd get --recursive` gave other files or bytes")
    info = s3cmd(ctx, "info", f"s3://{bucket}/t/{big_name}", sigv2=sigv2).stdout
    whole_md5 = hashlib.md5(local[big_name]).hexdigest()
    ctx.check(re.search(rf"File size:\s+{12 * MiB}\b", info), f"`s3cmd info`: {info!r}")
    ctx.check(re.search(rf"MD5 sum:\s+{whole_md5}\b", info),
              f"`s3cmd info` shows another MD5 than the file's {whole_md5}: {info!r}")
    s3cmd(ctx, "del", "--recursive", "--force", f"s3://{bucket}/t/", sigv2=sigv2)
    ctx.check_equal(list_keys(ctx, bucket), [], "keys after `s3cmd del --recursive`")
    s3cmd(ctx, "rb", f"s3://{bucket}", sigv2=sigv2)
    _gone(ctx, bucket)


S3CMD_OPERATIONS = ["CreateBucket", "CreateMultipartUpload", "UploadPart",
                    "CompleteMultipartUpload", "ListObjects", "HeadObject", "GetObjectAcl",
                    "GetObject", "DeleteObject", "DeleteBucket"]


@scenario("s3", S3CMD_OPERATIONS, client=S3CMD, name="s3cmd_round_trip")
def s3cmd_round_trip(ctx):
    """s3cmd (its own SigV4 signer): mb, put --recursive (a 12 MiB file in 5 MiB parts, odd and
    unicode names), ls -r, get --recursive, info, del --recursive, rb; bytes compared both
    ways."""
    _s3cmd_round_trip(ctx, sigv2=False)


@scenario("s3", S3CMD_OPERATIONS, client=S3CMD, variant="sigv2", name="s3cmd_round_trip_sigv2")
def s3cmd_round_trip_sigv2(ctx):
    """The same with `s3cmd --signature-v2` (SigV2 headers, multipart sub-resources signed)."""
    _s3cmd_round_trip(ctx, sigv2=True)


# --- pyarrow -----------------------------------------------------------------------------------
def _pyarrow_fs(ctx):
    try:
        import pyarrow.fs as pafs  # noqa: PLC0415 - optional client
        pafs.S3FileSystem  # noqa: B018 - absent when pyarrow was built without S3
    except (ImportError, AttributeError):
        raise Skip("pyarrow (with S3 support) is not installed") from None
    options = {"endpoint_override": _host_port(ctx), "scheme": "https" if _https(ctx) else "http",
               "access_key": ctx.access_key, "secret_key": ctx.secret_key,
               "region": ctx.region}
    if ctx.run.target.session_token:
        options["session_token"] = ctx.run.target.session_token
    return pafs, pafs.S3FileSystem(**options)


@scenario("s3", ["PutObject", "HeadObject", "GetObject", "ListObjectsV2", "DeleteObject"],
          client=PYARROW, name="pyarrow_parquet")
def pyarrow_parquet(ctx):
    """pyarrow's S3FileSystem (the AWS C++ SDK signer): write a Parquet file, read the object with
    boto3 and the table with pyarrow (equal), list the prefix, read a boto3 object with pyarrow
    (whole and ranged), delete."""
    pafs, fs = _pyarrow_fs(ctx)
    import pyarrow as pa  # noqa: PLC0415
    import pyarrow.parquet as pq  # noqa: PLC0415
    bucket = ctx.bucket("pyarrow")
    rows = 5000
    table = pa.table({"id": pa.array(range(rows), pa.int64()),
                      "name": [f"n\u00e9 {i} \u2603" for i in range(rows)],
                      "value": [i / 7 if i % 11 else None for i in range(rows)]})
    path = f"{bucket}/data/year=2024/part 0+1.parquet"
    pq.write_table(table, path, filesystem=fs)
    ctx.recorder.call(CallRecord(PYARROW, "s3", "write_table", None))
    _, raw = get_bytes(ctx, bucket, "data/year=2024/part 0+1.parquet")
    ctx.check(raw[:4] == b"PAR1" and raw[-4:] == b"PAR1", "the object is not a Parquet file")
    ctx.check(pq.read_table(io.BytesIO(raw)).equals(table),
              "the Parquet object (read with boto3) holds another table")
    ctx.check(pq.read_table(path, filesystem=fs).equals(table),
              "pyarrow read back another table")
    blob = os.urandom(300 * 1024)
    put(ctx, bucket, "data/blob &=.bin", blob)
    with fs.open_input_file(f"{bucket}/data/blob &=.bin") as fh:
        ctx.check(fh.read() == blob, "pyarrow read other bytes than boto3 put")
        ctx.check(fh.read_at(1000, 12345) == blob[12345:13345], "a ranged read differs")
    ctx.recorder.call(CallRecord(PYARROW, "s3", "open_input_file", None))
    infos = fs.get_file_info(pafs.FileSelector(f"{bucket}/data", recursive=True))
    files = {i.path: i.size for i in infos if i.type == pafs.FileType.File}
    ctx.check_equal(files, {path: len(raw), f"{bucket}/data/blob &=.bin": len(blob)},
                    "files listed under data/")
    fs.delete_file(path)
    fs.delete_file(f"{bucket}/data/blob &=.bin")
    ctx.recorder.call(CallRecord(PYARROW, "s3", "delete_file", None))
    left = [k for k in list_keys(ctx, bucket) if not k.endswith("/")]
    ctx.check_equal(left, [], "objects left after delete_file (directory markers aside)")


# --- s3fs --------------------------------------------------------------------------------------
@scenario("s3", ["PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload",
                 "HeadObject", "GetObject", "ListObjectsV2", "DeleteObjects", "DeleteBucket"],
          client=S3FS, name="s3fs_files")
def s3fs_files(ctx):
    """s3fs (fsspec, aiobotocore): write a file in 5 MiB blocks (multipart) and a small one, read
    boto3's object (whole and a range), ls/find/info, rm -r, rmdir the bucket."""
    try:
        import s3fs  # noqa: PLC0415 - optional client
    except ImportError:
        raise Skip("s3fs is not installed") from None
    # the bucket comes from boto3: s3fs's mkdir sends LocationConstraint=us-east-1, which S3
    # refuses (InvalidLocationConstraint), as AWS does
    bucket = ctx.name("s3fs")
    ctx.call("s3", "CreateBucket", Bucket=bucket,
             **({} if ctx.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": ctx.region}}))
    ctx.defer(_delete_if_there, ctx, bucket)
    client_kwargs = {"endpoint_url": ctx.endpoint, "region_name": ctx.region}
    if not ctx.run.target.verify_ssl:
        client_kwargs["verify"] = False
    fs = s3fs.S3FileSystem(key=ctx.access_key, secret=ctx.secret_key,
                           token=ctx.run.target.session_token, client_kwargs=client_kwargs,
                           skip_instance_cache=True, use_listings_cache=False)
    big = os.urandom(5 * MiB + 4096)
    with fs.open(f"{bucket}/d/big file+&=.bin", "wb", block_size=5 * MiB) as fh:
        fh.write(big)
    ctx.recorder.call(CallRecord(S3FS, "s3", "open(wb)", None))
    head = ctx.call("s3", "HeadObject", Bucket=bucket, Key="d/big file+&=.bin")
    ctx.check(re.fullmatch(r'"[0-9a-f]{32}-\d+"', head.get("ETag", "")),
              f"a multipart upload's ETag, got {head.get('ETag')}")
    ctx.check(object_sha256(ctx, bucket, "d/big file+&=.bin") == hashlib.sha256(big).hexdigest(),
              "the object s3fs wrote holds other bytes")
    fs.pipe(f"{bucket}/d/unicod\u00e9 \u2603.txt", "snow \u2603".encode())
    ctx.check(get_bytes(ctx, bucket, "d/unicod\u00e9 \u2603.txt")[1] == "snow \u2603".encode(),
              "the object s3fs piped holds other bytes")
    blob = os.urandom(200 * 1024)
    put(ctx, bucket, "e/blob.bin", blob)
    ctx.check(fs.cat(f"{bucket}/e/blob.bin") == blob, "s3fs read other bytes than boto3 put")
    with fs.open(f"{bucket}/e/blob.bin", "rb") as fh:
        fh.seek(54321)
        ctx.check(fh.read(1000) == blob[54321:55321], "a ranged read differs")
    with fs.open(f"{bucket}/d/big file+&=.bin", "rb") as fh:
        ctx.check(fh.read() == big, "s3fs read back other bytes than it wrote")
    ctx.recorder.call(CallRecord(S3FS, "s3", "cat/open(rb)", None))
    ctx.check_equal(sorted(fs.ls(f"{bucket}/d")),
                    sorted([f"{bucket}/d/big file+&=.bin", f"{bucket}/d/unicod\u00e9 \u2603.txt"]),
                    "s3fs ls d/")
    ctx.check_equal(sorted(fs.find(bucket)),
                    sorted([f"{bucket}/d/big file+&=.bin", f"{bucket}/d/unicod\u00e9 \u2603.txt",
                            f"{bucket}/e/blob.bin"]), "s3fs find")
    ctx.check_equal(fs.info(f"{bucket}/e/blob.bin").get("size"), len(blob), "s3fs info size")
    fs.rm([f"{bucket}/d", f"{bucket}/e"], recursive=True)
    ctx.check_equal(list_keys(ctx, bucket), [], "keys after s3fs rm -r")
    fs.rmdir(bucket)
    ctx.recorder.call(CallRecord(S3FS, "s3", "rm/rmdir", None))
    _gone(ctx, bucket)
