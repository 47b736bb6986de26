"""Run inside a throwaway network namespace standing in for the host (see
test_network_namespace.py): the single-host extra (``host_access``) must route the public pool
from this "host" into Nimbo's edge, reach a guest's public address, keep guests from opening
connections towards the host, and leave nothing behind."""
import asyncio
import json
import os
import subprocess
import sys

from backend.network.namespace import NamespaceDataPath
from tests.backend.netns_helpers import SERVER, FakeGuests, connect, sh, two_vpcs


async def connect_here(host: str, port: int) -> str:
    """A TCP connection from this namespace itself (no ip netns exec)."""
    code = (f"import socket\ntry:\n s=socket.create_connection(({host!r},{port}),2)\n"
            " print(s.recv(100).decode().strip())\nexcept OSError: pass\n")
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", code, stdout=asyncio.subprocess.PIPE)
    return (await proc.communicate())[0].decode().strip()


async def main(work: str) -> None:
    dp = NamespaceDataPath(os.path.join(work, "data"), os.path.join(work, "imds.sock"),
                           public_pool=["198.51.100.0/24"], host_access=True)
    result = {}
    guests = FakeGuests(dp)
    server = None
    try:
        await dp.open()
        state = two_vpcs()
        await dp.apply(state)
        guests.add(state.interfaces[0], "vpc-0aaa", "10.0.1.1")
        await dp.apply(state)
        guests.serve("eni-0a01", 22)
        result["route"] = sh("ip", "route", "show", "198.51.100.0/24").stdout.strip()
        result["reached"] = await connect_here("198.51.100.5", 22)
        result["private"] = await connect(dp.name, "10.0.1.6", 22)
        server = subprocess.Popen([sys.executable, SERVER, "9001"], stdout=subprocess.PIPE, text=True)
        assert server.stdout.readline().strip() == "listening"
        result["host_self"] = await connect_here("169.254.255.249", 9001)
        result["guest_to_host"] = await connect(guests.names["eni-0a01"], "169.254.255.249", 9001)
    finally:
        if server is not None:
            server.kill()
            server.wait()
        guests.close()
        await dp.destroy()
    result["links_after"] = sorted(link["ifname"] for link in json.loads(sh("ip", "-j", "link").stdout))
    result["route_after"] = sh("ip", "route", "show", "198.51.100.0/24").stdout.strip()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
