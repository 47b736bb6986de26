"""A server of the test's own: acknowledged writes survive ``kill -9``, an upload killed midway
leaves nothing behind, and S3 over HTTPS (botocore's aws-chunked uploads with a CRC trailer)."""
from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import ipaddress
import os
import signal
import time
import urllib.parse
import uuid

import boto3
import botocore.config
import pytest
import urllib3
from botocore.exceptions import ClientError

from storage.blobs import TMP_SUFFIX

MiB = 1024 * 1024


def blob_files(data_dir: str) -> list[str]:
    root = os.path.join(data_dir, "blobs")
    return [os.path.join(folder, name) for folder, _, names in os.walk(root) for name in names
            if name != ".lock"]


def restart(srv) -> None:
    srv.stop(signal.SIGKILL)
    os.unlink(os.path.join(srv.data_dir, "endpoint"))
    srv.start()


@pytest.mark.parametrize("workers", ["1", "2"])
def test_acknowledged_put_survives_kill_9(fresh_server, workers):
    """kill -9 of the server (with --workers 2: of the parent, whose workers the kernel kills)."""
    fresh_server.extra_args = ["--workers", workers]
    srv = fresh_server.start()
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="durable")
    big, small = os.urandom(3 * MiB + 1), b"inline bytes"
    s3.put_object(Bucket="durable", Key="big", Body=big)
    s3.put_object(Bucket="durable", Key="small", Body=small, Metadata={"m": "1"})
    restart(srv)
    s3 = srv.client("s3")
    assert s3.get_object(Bucket="durable", Key="big")["Body"].read() == big
    got = s3.get_object(Bucket="durable", Key="small")
    assert got["Body"].read() == small and got["Metadata"] == {"m": "1"}


def test_acknowledged_versions_survive_kill_9(fresh_server):
    """Every version (blob or inline, current or not), delete marker, tag and lock acknowledged
    before a kill -9 is there after the restart."""
    srv = fresh_server.start()
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="versions")
    s3.put_bucket_versioning(Bucket="versions", VersioningConfiguration={"Status": "Enabled"})
    big, small = os.urandom(3 * MiB + 1), b"inline"
    v1 = s3.put_object(Bucket="versions", Key="k", Body=big)["VersionId"]
    v2 = s3.put_object(Bucket="versions", Key="k", Body=small, Tagging="a=1")["VersionId"]
    marker = s3.delete_object(Bucket="versions", Key="k")["VersionId"]
    s3.create_bucket(Bucket="vault", ObjectLockEnabledForBucket=True)
    locked = s3.put_object(Bucket="vault", Key="k", Body=b"x", ObjectLockLegalHoldStatus="ON")
    restart(srv)
    s3 = srv.client("s3")
    listed = s3.list_object_versions(Bucket="versions")
    assert [v["VersionId"] for v in listed["Versions"]] == [v2, v1]
    assert listed["DeleteMarkers"][0]["VersionId"] == marker
    assert s3.get_object(Bucket="versions", Key="k", VersionId=v1)["Body"].read() == big
    assert s3.get_object_tagging(Bucket="versions", Key="k", VersionId=v2)["TagSet"] == \
        [{"Key": "a", "Value": "1"}]
    assert s3.get_object_legal_hold(Bucket="vault", Key="k", VersionId=locked["VersionId"])[
        "LegalHold"]["Status"] == "ON"
    with pytest.raises(ClientError) as info:
        s3.delete_object(Bucket="vault", Key="k", VersionId=locked["VersionId"])
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert len(blob_files(srv.data_dir)) == 1
    s3.delete_object(Bucket="versions", Key="k", VersionId=v1)
    deadline = time.monotonic() + 10          # the blob is unlinked right after the commit
    while blob_files(srv.data_dir):
        assert time.monotonic() < deadline, "the deleted version's blob is still there"
        time.sleep(0.05)


def test_upload_killed_midway_leaves_nothing(fresh_server):
    srv = fresh_server.start()
    s3 = srv.client("s3")
    s3.create_bucket(Bucket="midway")
    url = urllib.parse.urlsplit(s3.generate_presigned_url(
        "put_object", Params={"Bucket": "midway", "Key": "half"}, ExpiresIn=300))
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.putrequest("PUT", f"{url.path}?{url.query}", skip_accept_encoding=True)
    conn.putheader("Content-Length", str(64 * MiB))
    conn.endheaders()
    for _ in range(8):
        conn.send(os.urandom(MiB))
    deadline = time.monotonic() + 20
    while not any(p.endswith(TMP_SUFFIX) for p in blob_files(srv.data_dir)):
        assert time.monotonic() < deadline, "the upload never reached the blob store"
        time.sleep(0.05)
    restart(srv)
    conn.close()
    s3 = srv.client("s3")
    with pytest.raises(ClientError) as info:
        s3.head_object(Bucket="midway", Key="half")
    assert info.value.response["Error"]["Code"] == "404"
    assert blob_files(srv.data_dir) == []          # no temp file, no orphan blob
    assert "Contents" not in s3.list_objects_v2(Bucket="midway")


def self_signed(tmp_path) -> tuple[str, str]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_path), str(key_path)


def test_https_chunked_upload_with_crc_trailer(fresh_server, tmp_path):
    cert, key = self_signed(tmp_path)
    fresh_server.extra_args = ["--tls-cert", cert, "--tls-key", key,
                               "--region", "us-east-1,eu-west-1"]
    srv = fresh_server.start()
    creds = srv.credentials()
    urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

    def client(region: str):
        return boto3.client("s3", endpoint_url=f"https://127.0.0.1:{srv.port}", verify=False,
                            region_name=region, aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                            aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                            config=botocore.config.Config(retries={"max_attempts": 1}))

    s3 = client("us-east-1")
    sent = []
    s3.meta.events.register("before-send.s3.PutObject",
                            lambda request, **_: sent.append(dict(request.headers)))
    bucket = f"tls-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    data = os.urandom(3 * MiB + 7)
    out = s3.put_object(Bucket=bucket, Key="k", Body=data)
    headers = {k.lower(): (v.decode() if isinstance(v, bytes) else v) for k, v in sent[0].items()}
    assert headers["x-amz-content-sha256"] == "STREAMING-UNSIGNED-PAYLOAD-TRAILER"
    assert headers["x-amz-trailer"] == "x-amz-checksum-crc32"
    assert "aws-chunked" in headers["content-encoding"]
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(data).digest()
    assert got["ChecksumCRC32"] == out["ChecksumCRC32"]
    assert "ContentEncoding" not in got                  # aws-chunked is the transport's only
    # a second region: the owner re-creating a bucket there gets BucketAlreadyOwnedByYou
    eu = client("eu-west-1")
    where = {"LocationConstraint": "eu-west-1"}
    eu.create_bucket(Bucket=f"{bucket}-eu", CreateBucketConfiguration=where)
    with pytest.raises(ClientError) as info:
        eu.create_bucket(Bucket=f"{bucket}-eu", CreateBucketConfiguration=where)
    assert info.value.response["Error"]["Code"] == "BucketAlreadyOwnedByYou"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 409
