"""The framework ceiling: an aiohttp server that answers S3's request shapes with no storage,
no authentication and no model, on the same event loop Nimbo uses (uvloop when installed).

    python -m bench.null_server --port PORT

GET /bucket/key answers a 4 KiB object with the headers S3 sends (ETag, Last-Modified,
Content-Type, Accept-Ranges, x-amz-request-id); PUT reads the whole body and answers its ETag
(a constant: no hashing); PUT /bucket creates nothing and answers 200; HEAD answers the GET's
headers; DELETE answers 204. Whatever Nimbo does beyond this (signatures, the model's codecs,
durable storage, metering) is what separates its figures from this server's, measured in the
same run.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket

from aiohttp import web

BODY = b"x" * 4096
ETAG = '"0f343b0931126a20f133d67c2b018a3b"'
LAST_MODIFIED = "Fri, 04 Dec 2026 00:00:00 GMT"


def _headers() -> dict[str, str]:
    return {"ETag": ETAG, "Last-Modified": LAST_MODIFIED, "Content-Type": "binary/octet-stream",
            "Accept-Ranges": "bytes", "x-amz-request-id": os.urandom(8).hex().upper(),
            "Server": "NullS3"}


async def get_object(request: web.Request) -> web.Response:
    return web.Response(body=BODY, headers=_headers())


async def head_object(request: web.Request) -> web.Response:
    headers = _headers()
    headers["Content-Length"] = str(len(BODY))
    return web.Response(headers=headers)


async def put(request: web.Request) -> web.Response:
    async for _ in request.content.iter_chunked(1 << 20):
        pass
    headers = {"x-amz-request-id": os.urandom(8).hex().upper(), "Server": "NullS3"}
    if request.match_info.get("key"):
        headers["ETag"] = ETAG
    return web.Response(headers=headers)


async def delete(request: web.Request) -> web.Response:
    return web.Response(status=204, headers={"x-amz-request-id": os.urandom(8).hex().upper()})


def make_app() -> web.Application:
    app = web.Application(client_max_size=1 << 40)
    app.router.add_route("GET", "/{bucket}/{key:.+}", get_object)
    app.router.add_route("HEAD", "/{bucket}/{key:.+}", head_object)
    app.router.add_route("PUT", "/{bucket}/{key:.+}", put)
    app.router.add_route("PUT", "/{bucket}", put)
    app.router.add_route("DELETE", "/{bucket}/{key:.+}", delete)
    return app


async def serve(port: int) -> None:
    runner = web.AppRunner(make_app(), access_log=None)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", port), backlog=1024)
    await web.SockSite(runner, sock).start()
    try:
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    try:
        import uvloop  # noqa: PLC0415
        run = uvloop.run
    except ImportError:
        run = asyncio.run
    try:
        run(serve(args.port))
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
