"""ListObjects (v1 and v2) through boto3 and raw signed HTTP against a live server: names come
back as stored unless ``encoding-type=url`` was asked for. boto3 always asks for it and decodes
what S3 encodes: in v1 that is Delimiter, Marker, NextMarker, Key and CommonPrefixes' Prefix,
not the top-level Prefix, which S3 returns as sent."""
from __future__ import annotations

import urllib.parse
import uuid

import pytest
from xml.etree import ElementTree

from tests.e2e.test_client_errors_not_500 import s3_send

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
NAME = "dir one/sub+plus&amp=é ü"


@pytest.fixture(scope="module")
def bucket(server):
    name = f"listenc-{uuid.uuid4().hex[:8]}"
    s3 = server.client("s3")
    s3.create_bucket(Bucket=name)
    s3.put_object(Bucket=name, Key=NAME + "/leaf.txt", Body=b"x")
    return name


def _xml_text(value: str) -> bytes:
    return value.replace("&", "&amp;").encode("utf-8")


@pytest.mark.parametrize("v2", [False, True])
def test_prefix_and_keys_unencoded_without_encoding_type(server, bucket, v2):
    query = urllib.parse.urlencode({"prefix": NAME + "/", "delimiter": "/",
                                    **({"list-type": "2"} if v2 else {})},
                                   quote_via=urllib.parse.quote)
    status, body = s3_send(server, "GET", f"/{bucket}?{query}")
    assert status == 200, body
    assert b"<Prefix>" + _xml_text(NAME + "/") + b"</Prefix>" in body, body
    assert b"<Key>" + _xml_text(NAME + "/leaf.txt") + b"</Key>" in body, body
    assert b"<Delimiter>/</Delimiter>" in body


@pytest.mark.parametrize("v2", [False, True])
def test_prefix_and_keys_encoded_with_encoding_type_url(server, bucket, v2):
    query = urllib.parse.urlencode({"prefix": NAME + "/", "encoding-type": "url",
                                    **({"list-type": "2"} if v2 else {})},
                                   quote_via=urllib.parse.quote)
    status, body = s3_send(server, "GET", f"/{bucket}?{query}")
    assert status == 200, body
    assert b"<EncodingType>url</EncodingType>" in body
    encoded = urllib.parse.quote(NAME + "/", safe="/")
    top = ElementTree.fromstring(body).find(f"{{{S3_NS}}}Prefix").text
    if v2:
        assert top == encoded, body
    else:      # ListObjects v1: the top-level Prefix as sent, even with encoding-type=url
        assert top == NAME + "/", body
    assert b"<Key>" + urllib.parse.quote(NAME + "/leaf.txt", safe="/").encode() + b"</Key>" in body


def test_boto3_list_objects_prefix_round_trips(server, bucket):
    s3 = server.client("s3")
    for prefix in (NAME + "/", "dir one/", "no such/"):
        v1 = s3.list_objects(Bucket=bucket, Prefix=prefix, Delimiter="/")
        assert v1["Prefix"] == prefix
        v2 = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, Delimiter="/")
        assert v2["Prefix"] == prefix
    v1 = s3.list_objects(Bucket=bucket, Prefix="dir one/", Delimiter="/")
    assert [p["Prefix"] for p in v1["CommonPrefixes"]] == [NAME + "/"]
