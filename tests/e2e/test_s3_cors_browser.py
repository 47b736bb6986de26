"""A real browser against a live server: headless Chromium loads a page from another origin (a
small HTTP server of the test's own on another loopback port), whose script uploads with
``fetch`` to a presigned PUT URL (virtual-hosted-style: ``BUCKET.s3.localhost``, which Chromium
resolves to loopback), reads the object back from a path-style presigned GET URL, and tries a
DELETE that no CORS rule allows. Chromium makes the preflights and enforces the answers: the
upload and the read succeed, the exposed ``ETag`` is readable and the unexposed request id is not,
and the DELETE is blocked at its preflight (the object stays).

Chromium reaches nothing but loopback: every host name but ``127.0.0.1`` and ``*.localhost``
resolves to nothing, everything else goes to a proxy on a closed loopback port, and its background
services are off."""
from __future__ import annotations

import http.server
import json
import queue
import shutil
import subprocess
import threading
import uuid

import boto3
import botocore.config
import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

PAGE = """<!doctype html><html><head><title>upload</title></head><body><script>
const cfg = %s;
async function run() {
  const out = {};
  try {
    let r = await fetch(cfg.put, {method: "PUT", body: "from the browser",
                                  headers: {"Content-Type": "text/plain",
                                            "x-amz-meta-owner": "page"}});
    out.put = {status: r.status, etag: r.headers.get("ETag"),
               requestId: r.headers.get("x-amz-request-id")};
    r = await fetch(cfg.get);
    out.get = {status: r.status, body: await r.text()};
  } catch (e) { out.error = String(e); }
  try {
    const r = await fetch(cfg.del, {method: "DELETE"});
    out.del = "sent: " + r.status;
  } catch (e) { out.del = "blocked"; }
  await fetch("/result", {method: "POST", body: JSON.stringify(out)});
}
run();
</script></body></html>"""


class PageServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, page: str) -> None:
        self.page = page.encode()
        self.results: queue.Queue = queue.Queue()
        super().__init__(("127.0.0.1", 0), _PageHandler)


class _PageHandler(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.server.page if self.path == "/" else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.results.put(json.loads(data))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def signer(server, style: str):
    creds = server.credentials()
    endpoint = f"http://s3.localhost:{server.port}" if style == "virtual" else server.endpoint
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
                        config=botocore.config.Config(signature_version="s3v4",
                                                      s3={"addressing_style": style}))


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (make apt-test)")
def test_a_browser_uploads_reads_and_is_refused_as_the_rules_say(server, tmp_path):
    s3 = server.client("s3")
    bucket = f"browser-{uuid.uuid4().hex[:8]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"keep me")
    virtual, path = signer(server, "virtual"), signer(server, "path")
    config = {
        "put": virtual.generate_presigned_url(
            "put_object", {"Bucket": bucket, "Key": "upload.txt", "ContentType": "text/plain",
                           "Metadata": {"owner": "page"}}, ExpiresIn=600),
        "get": path.generate_presigned_url("get_object", {"Bucket": bucket, "Key": "upload.txt"},
                                           ExpiresIn=600),
        "del": path.generate_presigned_url("delete_object", {"Bucket": bucket, "Key": "keep.txt"},
                                           ExpiresIn=600),
    }
    assert config["put"].startswith(f"http://{bucket}.s3.localhost:{server.port}/")
    page = PageServer(PAGE % json.dumps(config))
    origin = f"http://127.0.0.1:{page.server_address[1]}"
    s3.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [
        {"AllowedOrigins": [origin], "AllowedMethods": ["PUT", "GET"],
         "AllowedHeaders": ["content-type", "x-amz-*"], "ExposeHeaders": ["ETag"]}]})
    threading.Thread(target=page.serve_forever, daemon=True).start()
    browser = subprocess.Popen(
        [CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-default-apps", "--disable-extensions", "--disable-domain-reliability",
         "--metrics-recording-only", "--no-pings", "--disable-features=MediaRouter",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE *.localhost",
         "--proxy-server=http://127.0.0.1:9", "--proxy-bypass-list=127.0.0.1;*.localhost",
         f"--user-data-dir={tmp_path / 'profile'}", origin + "/"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        result = page.results.get(timeout=60)
    finally:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()
        page.shutdown()
        page.server_close()
    assert "error" not in result, result
    stored = s3.head_object(Bucket=bucket, Key="upload.txt")
    assert result["put"] == {"status": 200, "etag": stored["ETag"], "requestId": None}
    assert stored["Metadata"] == {"owner": "page"} and stored["ContentType"] == "text/plain"
    assert result["get"] == {"status": 200, "body": "from the browser"}
    assert result["del"] == "blocked"
    assert s3.get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"keep me"
