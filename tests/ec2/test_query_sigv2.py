"""EC2 Query requests signed with Signature Version 2 (issue 9 item 14): libcloud's default signer,
euca2ools and boto 2. Signed here by botocore's own SigV2 signer, by hand (HmacSHA1, GET), and by
libcloud's EC2 driver against a live gateway; bad signatures get EC2's own errors."""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import urllib.parse
import xml.etree.ElementTree as ET

import aiohttp
import pytest
from botocore.auth import SigV2Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.ec2.test_through_gateway import call, live  # noqa: F401 (the live-server fixture)

NS = "{http://ec2.amazonaws.com/doc/2016-11-15/}"


def _keys(ec2):
    creds = ec2._request_signer._credentials
    return creds.access_key, creds.secret_key


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def hand_signed(method: str, endpoint: str, params: dict, access_key: str, secret: str,
                algorithm: str = "HmacSHA1") -> str:
    """A query string signed as AWS's SigV2 documentation says (independent of Nimbo's code)."""
    params = dict(params, AWSAccessKeyId=access_key, SignatureVersion="2", SignatureMethod=algorithm)
    host = urllib.parse.urlsplit(endpoint).netloc.lower()
    quoted = "&".join(f"{urllib.parse.quote(k, safe='-_.~')}={urllib.parse.quote(str(v), safe='-_.~')}"
                      for k, v in sorted(params.items()))
    to_sign = f"{method}\n{host}\n/\n{quoted}"
    digest = {"HmacSHA1": hashlib.sha1, "HmacSHA256": hashlib.sha256}[algorithm]
    signature = base64.b64encode(hmac.new(secret.encode(), to_sign.encode(), digest).digest()).decode()
    return quoted + "&Signature=" + urllib.parse.quote(signature, safe="")


async def _get(endpoint: str, query: str) -> tuple[int, ET.Element]:
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{endpoint}/?{query}", skip_auto_headers=()) as response:
            return response.status, ET.fromstring(await response.read())


def _error(root: ET.Element) -> str:
    assert root.tag == "Response", ET.tostring(root)     # EC2's error document, not S3's
    return root.findtext("Errors/Error/Code")


async def test_botocore_sigv2_post_reaches_ec2(live):
    ec2, _, _ = live
    access_key, secret = _keys(ec2)
    endpoint = ec2.meta.endpoint_url
    request = AWSRequest(method="POST", url=endpoint + "/",
                         data={"Action": "DescribeRegions", "Version": "2016-11-15"})
    SigV2Auth(Credentials(access_key, secret)).add_auth(request)
    body = urllib.parse.urlencode(request.data)
    async with aiohttp.ClientSession() as session:
        async with session.post(endpoint + "/", data=body,
                                headers={"Content-Type": "application/x-www-form-urlencoded"}) as response:
            text = await response.read()
            assert response.status == 200, text
    root = ET.fromstring(text)
    assert root.tag == NS + "DescribeRegionsResponse"
    assert root.find(f"{NS}regionInfo/{NS}item/{NS}regionName").text == "us-east-1"


@pytest.mark.parametrize("algorithm", ["HmacSHA1", "HmacSHA256"])
async def test_hand_signed_get_with_either_algorithm(live, algorithm):
    ec2, _, _ = live
    access_key, secret = _keys(ec2)
    query = hand_signed("GET", ec2.meta.endpoint_url, {"Action": "DescribeAvailabilityZones",
                        "Version": "2016-11-15", "Timestamp": _now()}, access_key, secret, algorithm)
    status, root = await _get(ec2.meta.endpoint_url, query)
    assert status == 200 and root.tag == NS + "DescribeAvailabilityZonesResponse"


@pytest.mark.parametrize("case,status,code", [
    ("wrong secret", 401, "AuthFailure"),
    ("unknown key", 401, "AuthFailure"),
    ("tampered parameter", 401, "AuthFailure"),
    ("old timestamp", 400, "RequestExpired"),
    ("past expires", 400, "RequestExpired"),
    ("no timestamp", 400, "IncompleteSignature"),
    ("bad method", 400, "IncompleteSignature"),
])
async def test_bad_sigv2_requests_get_ec2_errors(live, case, status, code):
    ec2, _, _ = live
    access_key, secret = _keys(ec2)
    params = {"Action": "DescribeRegions", "Version": "2016-11-15", "Timestamp": _now()}
    algorithm = "HmacSHA256"
    if case == "wrong secret":
        secret = "x" + secret
    elif case == "unknown key":
        access_key = "AKIDNOSUCHKEY0000000"
    elif case == "old timestamp":
        params["Timestamp"] = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=20)).strftime(
            "%Y-%m-%dT%H:%M:%SZ")
    elif case == "past expires":
        del params["Timestamp"]
        params["Expires"] = "2020-01-01T00:00:00Z"
    elif case == "no timestamp":
        del params["Timestamp"]
    elif case == "bad method":
        algorithm = "HmacMD5"
    query = hand_signed("GET", ec2.meta.endpoint_url, params, access_key, secret,
                        "HmacSHA256" if algorithm == "HmacMD5" else algorithm)
    if case == "bad method":
        query = query.replace("SignatureMethod=HmacSHA256", "SignatureMethod=HmacMD5")
    if case == "tampered parameter":
        query = query.replace("Action=DescribeRegions", "Action=DescribeAvailabilityZones")
    got_status, root = await _get(ec2.meta.endpoint_url, query)
    assert (got_status, _error(root)) == (status, code)


async def test_libcloud_ec2_driver_with_its_default_signature(live):
    """libcloud signs EC2 with SigV2 unless told otherwise; reboot_node() reads <return>true</return>."""
    libcloud_ec2 = pytest.importorskip("libcloud.compute.drivers.ec2")
    ec2, image_id, _ = live
    access_key, secret = _keys(ec2)
    port = urllib.parse.urlsplit(ec2.meta.endpoint_url).port
    driver = libcloud_ec2.EC2NodeDriver(access_key, secret, host="127.0.0.1", port=port, secure=False,
                                        region="us-east-1")
    assert driver.signature_version == "2"
    await call(ec2.run_instances, ImageId=image_id, MinCount=1, MaxCount=1, InstanceType="t3.nano")
    from ec2_api.operations import OPERATIONS
    if "DescribeAddresses" in OPERATIONS:       # list_nodes() asks for elastic IPs too
        nodes = await call(driver.list_nodes)
    else:                                       # the DescribeInstances half of list_nodes()
        response = await call(driver.connection.request, driver.path,
                              params={"Action": "DescribeInstances"})
        nodes = driver._to_nodes(response.object, "reservationSet/item/instancesSet/item")
    assert len(nodes) == 1 and nodes[0].extra["image_id"] == image_id
    assert await call(driver.reboot_node, nodes[0]) is True
    images = await call(driver.list_images, ex_image_ids=[image_id])
    assert [i.id for i in images] == [image_id]
    locations = await call(driver.list_locations)
    assert {loc.availability_zone.name for loc in locations} >= {"us-east-1a"}
