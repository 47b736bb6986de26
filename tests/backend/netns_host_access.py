"""Run inside a throwaway network namespace standing in for the host (see
test_network_namespace.py): the single-host extra (``host_access``) must route the public pool
from this "host" into Nimbo's edge, reach a guest's public address, and leave nothing behind."""
import asyncio
import json
import os
import sys

from backend.network.namespace import NamespaceDataPath
from tests.backend.netns_helpers import FakeGuests, connect, sh, two_vpcs


async def main(work: str) -> None:
    dp = NamespaceDataPath(os.path.join(work, "data"), os.path.join(work, "imds.sock"),
                           public_pool=["198.51.100.0/24"], host_access=True)
    result = {}
    guests = FakeGuests(dp)
    try:
        await dp.open()
        state = two_vpcs()
        await dp.apply(state)
        guests.add(state.interfaces[0], "vpc-0aaa", "10.0.1.1")
        await dp.apply(state)
        guests.serve("eni-0a01", 22)
        host_route = sh("ip", "route", "show", "198.51.100.0/24").stdout
        result["route"] = host_route.strip()
        # from this "host" namespace itself, no ip netns exec
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", "import socket;s=socket.create_connection(('198.51.100.5',22),2);print(s.recv(100).decode().strip())",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        result["reached"] = (await proc.communicate())[0].decode().strip()
        result["private"] = await connect(dp.name, "10.0.1.6", 22)
    finally:
        guests.close()
        await dp.destroy()
    result["links_after"] = sorted(l["ifname"] for l in json.loads(sh("ip", "-j", "link").stdout))
    result["route_after"] = sh("ip", "route", "show", "198.51.100.0/24").stdout.strip()
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
