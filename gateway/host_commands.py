"""``nimbo host add|list|remove``: the libvirt compute hosts of a data directory.

    nimbo host add rack2 qemu+ssh://root@rack2/system --zone us-east-1b
    nimbo host list

A running server picks up a host added meanwhile at its next launch placed there.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(commands: Any, data_dir_arg: Any, data_dir_after: Any) -> None:
    host = commands.add_parser("host", help="libvirt compute hosts (placement of instances)",
                               description="The libvirt hosts instances are placed on (--backend libvirt).")
    data_dir_arg(host)
    data_dir_arg = data_dir_after   # the subcommands take --data-dir after them too
    cmds = host.add_subparsers(dest="host_command", required=True, metavar="COMMAND")
    add = data_dir_arg(cmds.add_parser("add", help="register a host: NAME URI (qemu:///system, "
                                       "qemu+ssh://user@host/system, qemu+tcp://host/system)"))
    add.add_argument("name")
    add.add_argument("uri")
    add.add_argument("--zone", default=None, help="the availability zone it belongs to (default: every zone)")
    add.add_argument("--vcpus", type=int, default=None, help="vCPUs offered (default: its CPUs x 8)")
    add.add_argument("--memory-mib", type=int, default=None, help="MiB offered (default: 80%% of its RAM)")
    data_dir_arg(cmds.add_parser("list", help="the hosts with their capacity and use"))
    remove = data_dir_arg(cmds.add_parser("remove", help="forget a host that runs no instances"))
    remove.add_argument("name", help="host name or id")


async def run(args: argparse.Namespace) -> int:
    from ec2_api import compute_hosts   # noqa: PLC0415
    from gateway import data_dir as data_dirs   # noqa: PLC0415
    from storage.ec2_schema import SCHEMA as EC2_SCHEMA   # noqa: PLC0415
    from storage.metadata import open_metadata   # noqa: PLC0415
    # the gateway's metadata: its SQLite file, or the cluster's PostgreSQL (every gateway's hosts)
    db = await open_metadata(data_dirs.metadata_url(args.data_dir), args.data_dir)
    try:
        await db.migrate(EC2_SCHEMA)
        await db.migrate(compute_hosts.SCHEMA)
        if args.host_command == "add":
            row = await compute_hosts.add_host(db, args.name, args.uri, zone=args.zone, vcpus=args.vcpus,
                                               memory_mib=args.memory_mib)
            print(f"{row['host_id']}\t{row['name']}\t{row['vcpus']} vCPUs\t{row['memory_mib']} MiB")
        elif args.host_command == "remove":
            await compute_hosts.remove_host(db, args.name)
        else:
            hosts = await compute_hosts.list_hosts(db)
            print(compute_hosts.render_hosts(hosts, await compute_hosts.host_loads(db)))
            if not hosts:
                print("(none: `nimbo serve --backend libvirt` registers its libvirt_uri as host 'local')",
                      file=sys.stderr)
    finally:
        await db.close()
    return 0
