"""``nimbo image import FILE``: an operator registers a local disk image (raw, qcow2, VMDK, VHD,
VHDX, VDI or OVA) as an AMI, with a progress bar on the terminal. The conversion is
``ec2_api.import_tasks.import_local_file`` (the checks and crash story of ImportImage)."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
import time
from typing import Any

BAR = 40


def add_parser(image_cmds: Any, serve_args: Any) -> None:
    parser = image_cmds.add_parser("import", help="convert a local disk image and register it as an AMI")
    serve_args(parser)
    parser.add_argument("file", help="the disk image (raw, qcow2, vmdk, vhd, vhdx, vdi or ova)")
    parser.add_argument("--name", default=None, help="the AMI's name (default: the file's name)")
    parser.add_argument("--description", default=None)
    parser.add_argument("--format", default=None, help="the declared format (default: detected)")
    parser.add_argument("--account", default=None, help="owner account id or name (default: the admin)")
    parser.add_argument("--public", action="store_true", help="launchable by every account")
    parser.add_argument("--no-progress", action="store_true")


class Progress:
    """A one-line bar on a terminal (plain percentages elsewhere)."""

    def __init__(self, stream: Any, enabled: bool) -> None:
        self.stream, self.enabled = stream, enabled
        self.tty = enabled and stream.isatty()
        self.started = time.monotonic()
        self.last = -1

    async def __call__(self, percent: float) -> None:
        if not self.enabled or int(percent) == self.last:
            return
        self.last = int(percent)
        done = int(BAR * percent / 100)
        line = f"converting [{'#' * done}{'.' * (BAR - done)}] {percent:5.1f}% {time.monotonic() - self.started:6.1f}s"
        self.stream.write(("\r" + line) if self.tty else line + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


async def import_image_file(accounts: Any, config: Any, args: argparse.Namespace) -> int:
    from ec2_api import images, import_tasks  # noqa: PLC0415
    from ec2_api.common import to_us  # noqa: PLC0415
    from ec2_api.disk_conversion import DiskValidationError  # noqa: PLC0415
    admin, _ = await accounts.bootstrap()
    owner = admin
    if args.account:
        owner = await accounts.store.find_account(args.account)
        if owner is None:
            raise LookupError(f"no account {args.account!r}")
    if not os.path.isfile(args.file):
        raise ValueError(f"{args.file}: no such file")
    name = args.name or os.path.basename(args.file)
    progress = Progress(sys.stderr, not args.no_progress)
    try:
        image_id = await import_tasks.import_local_file(
            accounts.store.db, config, args.file, account_id=owner.account_id, region=config.default_region,
            name=name, description=args.description, declared=args.format, public=args.public,
            owner_alias=images.NIMBO_ALIAS if owner.account_id == admin.account_id and args.public else None,
            created_us=to_us(dt.datetime.now(dt.timezone.utc)), on_progress=progress)
    except DiskValidationError as exc:
        progress.close()
        print(f"nimbo: {args.file}: {exc}", file=sys.stderr)
        return 1
    progress.close()
    print(image_id)
    return 0
