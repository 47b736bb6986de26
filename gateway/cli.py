"""The ``nimbo`` command: serve, credentials, admin (accounts and keys)."""
from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import os
import shlex
import signal
import socket
import ssl
import sys
from typing import Awaitable, Callable

from aiohttp import web

from gateway import data_dir as data_dirs
from gateway import image_commands
from gateway import host_commands
from gateway.accounts import AccountService
from gateway.config import DEFAULT_REGION, ConfigError, load_config
from storage import accounts as account_rows
from storage.metadata import MetadataUnavailable, open_metadata

log = logging.getLogger("nimbo")

DEFAULT_DATA_DIR = data_dirs.DEFAULT_DATA_DIR


_DATA_DIR_HELP = ("the data directory of `nimbo serve` (default: ./nimbo-data if it exists, else "
                  "the running server's); never created here")


def _data_dir_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", default=os.environ.get("NIMBO_DATA_DIR") or None,
                        help=_DATA_DIR_HELP)


def _data_dir_after(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``--data-dir`` accepted after a subcommand too (``nimbo admin list-keys --data-dir D``);
    given before it, it is kept (SUPPRESS: the subcommand sets nothing when absent)."""
    parser.add_argument("--data-dir", default=argparse.SUPPRESS, help=_DATA_DIR_HELP)
    return parser


def _serve_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default 8773)")
    parser.add_argument("--data-dir", default=None, help="data directory (default ./nimbo-data)")
    parser.add_argument("--region", default=None,
                        help=f"region(s) served, comma-separated (default {DEFAULT_REGION})")
    parser.add_argument("--config", default=None, help="a TOML config file")
    parser.add_argument("--tls-cert", default=None)
    parser.add_argument("--tls-key", default=None)
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--access-log", action="store_const", const=True, default=None,
                        help="log one line per request (logger nimbo.access, level INFO)")
    parser.add_argument("--backend", default=None, help="hypervisor driver: qemu (default), libvirt or fake")
    parser.add_argument("--workers", type=int, default=None,
                        help="server processes on the one port (default: one per core)")
    parser.add_argument("--metadata", default=None,
                        help="metadata on PostgreSQL: postgresql://... (default: SQLite in the data dir)")
    parser.add_argument("--blob-dir", default=None,
                        help="object data directory, shared by a cluster's gateways (default: DATA_DIR/blobs)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="nimbo", description="A private cloud that speaks EC2 and S3.")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the server")
    _serve_args(serve)

    creds = commands.add_parser("credentials", help="print shell exports for an account's key")
    _data_dir_arg(creds)
    creds.add_argument("--account", default=None, help="account id or name (default: the admin)")

    admin = commands.add_parser("admin", help="accounts and access keys",
                                description="Accounts and access keys of a Nimbo data directory.")
    _data_dir_arg(admin)
    admin_cmds = admin.add_subparsers(dest="admin_command", required=True, metavar="COMMAND")

    def admin_command(name: str, text: str) -> argparse.ArgumentParser:
        return _data_dir_after(admin_cmds.add_parser(name, help=text, description=text))
    account = admin_command("create-account", "create a tenant account (prints its id, name and "
                            "canonical user id)")
    account.add_argument("name", help="the account's name (unique)")
    account.add_argument("--account-id", default=None, help="a given 12-digit id (default: a new one)")
    account.add_argument("--email", default=None, help="the account's email address (S3 ACL grants"
                         " by email)")
    migrate = admin_command("migrate-metadata", "copy this data directory's SQLite metadata to "
                            "PostgreSQL, verified (row counts and checksums per table); stop the "
                            "server first")
    migrate.add_argument("--to", required=True, metavar="URL", help="postgresql://... (an empty database)")
    admin_command("list-accounts", "list the accounts: id, name, role (admin or tenant), canonical "
                  "user id")
    key = admin_command("create-key", "create an access key for an account (prints the key id and "
                        "secret), or import an existing one")
    key.add_argument("account", help="account id or name")
    key.add_argument("--access-key-id", default=None, help="import this key id ...")
    key.add_argument("--secret-access-key", default=None, help="... with this secret")
    listing = admin_command("list-keys", "list access keys (of one account, or all): key id, "
                            "account id, status; never the secrets")
    listing.add_argument("account", nargs="?", default=None, help="account id or name")
    for verb, text in (("disable-key", "disable an access key (requests signed with it get "
                                       "InvalidAccessKeyId / AuthFailure)"),
                       ("enable-key", "enable a disabled access key again"),
                       ("delete-key", "delete an access key for good")):
        admin_command(verb, text).add_argument("access_key_id", help="the access key id")

    image = commands.add_parser("image", help="machine images")
    image_cmds = image.add_subparsers(dest="image_command", required=True)
    tiny = image_cmds.add_parser("build-tiny", help="build the tiny Linux image (offline, from "
                                 "Debian's packages) and register it as a public AMI; takes serve's "
                                 "flags so that `make run ARGS=...` can pass the same to both")
    _serve_args(tiny)
    tiny.add_argument("--if-missing", action="store_true", help="keep an image registered already")
    image_commands.add_parser(image_cmds, _serve_args)
    debian = image_cmds.add_parser("build-debian", help="build a Debian cloud image with cloud-init "
                                   "(mmdebstrap, as root; minutes) and register it as a public AMI")
    _serve_args(debian)
    debian.add_argument("--suite", default="bookworm", help="Debian suite (default bookworm)")
    debian.add_argument("--if-missing", action="store_true", help="keep an image registered already")
    debian.add_argument("--rebuild", action="store_true", help="rebuild even if a cached build exists")

    net = commands.add_parser("net", help="the instance network's namespaces (root)")
    net_cmds = net.add_subparsers(dest="net_command", required=True)
    net_exec = net_cmds.add_parser("exec", help="run a command in Nimbo's network namespace "
                                   "(public addresses), or with --vpc in a VPC's router namespace")
    _data_dir_arg(net_exec)
    net_exec.add_argument("--vpc", default=None, help="a VPC id: its private addresses")
    net_exec.add_argument("argv", nargs=argparse.REMAINDER, help="-- COMMAND ...")
    _data_dir_arg(net_cmds.add_parser("destroy", help="remove the namespaces and their helpers"))

    host_commands.add_parser(commands, _data_dir_arg, _data_dir_after)

    billing = commands.add_parser("billing", help="usage and cost reports")
    _data_dir_arg(billing)
    billing_cmds = billing.add_subparsers(dest="billing_command", required=True)
    report = _data_dir_after(billing_cmds.add_parser(
        "report", help="a period's costs, by service and usage type",
        description="A month's costs by account, service and usage type, month-to-date for the "
                    "current month (the open hour estimated). The table rounds money to cents; "
                    "csv and json give exact amounts."))
    report.add_argument("--period", required=True, help="a month, e.g. 2026-11")
    report.add_argument("--account", default=None, help="account id or name (default: all)")
    report.add_argument("--format", default="table", choices=("table", "csv", "json", "focus"),
                        help="focus: the FOCUS 1.2 cost and usage CSV (FinOps tools' import)")
    report.add_argument("--config", default=None, help="a TOML config file (for the price list)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            return serve(args)
        if args.command == "credentials":
            args.data_dir = data_dirs.existing_data_dir(args.data_dir)
            return asyncio.run(_with_accounts(args.data_dir, lambda svc: credentials(svc, args)))
        if args.command == "image":
            config = _serve_config(args)
            builders = {"build-debian": build_debian, "import": image_commands.import_image_file}
            action = builders.get(args.image_command, build_tiny)
            return asyncio.run(_with_accounts(config.data_dir, lambda svc: action(svc, config, args)))
        if args.command == "net":   # names the namespaces after the data directory; needs no database
            from backend.network import namespace
            args.data_dir = args.data_dir or data_dirs.existing_data_dir(None)
            if args.net_command == "destroy":
                namespace.net_destroy(args.data_dir)
                return 0
            return namespace.net_exec(args.data_dir, args.argv[1:] if args.argv[:1] == ["--"] else args.argv, args.vpc)
        args.data_dir = data_dirs.existing_data_dir(args.data_dir)
        if args.command == "host":
            return asyncio.run(host_commands.run(args))
        if args.command == "billing":
            return asyncio.run(_with_accounts(args.data_dir, lambda svc: billing_report(svc, args)))
        return asyncio.run(_with_accounts(args.data_dir, lambda svc: admin(svc, args)))
    except (ConfigError, ValueError, LookupError, data_dirs.DataDirError, MetadataUnavailable) as exc:
        print(f"nimbo: {exc}", file=sys.stderr)
        return 2


async def _with_accounts(data_dir: str, action: Callable[[AccountService], Awaitable[int]]) -> int:
    """Run ``action`` on the accounts of ``data_dir`` (``image build-tiny``, run before the first
    ``serve`` by ``make run``, may create it; the other commands pass an existing one)."""
    os.makedirs(data_dir, mode=0o700, exist_ok=True)
    db = await open_metadata(data_dirs.metadata_url(data_dir), data_dir)
    try:
        store = account_rows.AccountStore(db)
        await store.setup()
        return await action(AccountService(store))
    finally:
        await db.close()


async def credentials(accounts: AccountService, args: argparse.Namespace) -> int:
    if args.account:
        account = await accounts.store.find_account(args.account)
        if account is None:
            raise LookupError(f"no account {args.account!r}")
    else:
        account, _ = await accounts.bootstrap()
    keys = [k for k in await accounts.store.list_keys(account.account_id) if k.active]
    key = keys[0] if keys else await accounts.create_key(account.account_id)
    endpoint_file = os.path.join(args.data_dir, "endpoint")
    endpoint = "http://127.0.0.1:8773"
    if os.path.exists(endpoint_file):
        with open(endpoint_file) as fh:
            endpoint = fh.read().strip() or endpoint
    region = DEFAULT_REGION
    for name, value in (("AWS_ENDPOINT_URL", endpoint), ("AWS_ACCESS_KEY_ID", key.access_key_id),
                        ("AWS_SECRET_ACCESS_KEY", key.secret_access_key),
                        ("AWS_DEFAULT_REGION", region), ("AWS_REGION", region)):
        print(f"export {name}={shlex.quote(value)}")
    return 0


async def build_tiny(accounts: AccountService, config, args: argparse.Namespace) -> int:
    from backend.tiny_image import build_tiny_image  # noqa: PLC0415
    from ec2_api.images import register_tiny_image  # noqa: PLC0415
    await accounts.bootstrap()
    artifacts = await asyncio.to_thread(build_tiny_image, config.path("tiny-image"))
    image_id = await register_tiny_image(accounts.store.db, config, artifacts, if_missing=args.if_missing)
    print(image_id)
    return 0


async def build_debian(accounts: AccountService, config, args: argparse.Namespace) -> int:
    from backend.debian_image import DebianImageError  # noqa: PLC0415
    from ec2_api.builtin_images import build_debian as build  # noqa: PLC0415
    await accounts.bootstrap()
    try:
        print(await build(accounts.store.db, config, suite=args.suite, if_missing=args.if_missing,
                          force=args.rebuild, progress=lambda line: print(line, file=sys.stderr, flush=True)))
    except DebianImageError as exc:
        print(f"nimbo: the Debian image could not be built: {exc}", file=sys.stderr)
        return 1
    return 0


async def billing_report(accounts: AccountService, args: argparse.Namespace) -> int:
    from billing.report import billing_report as render  # noqa: PLC0415
    config = load_config(args.config, data_dir=args.data_dir)
    print(await render(accounts.store.db, config, args.period, args.account, args.format), end="")
    return 0


async def admin(accounts: AccountService, args: argparse.Namespace) -> int:
    store = accounts.store
    command = args.admin_command
    if command == "migrate-metadata":
        from storage.migrate_command import migrate_command  # noqa: PLC0415
        return await migrate_command(store.db, args.data_dir, args.to)
    if command == "create-account":
        try:
            account = await accounts.create_account(args.name, account_id=args.account_id,
                                                    email=args.email)
        except account_rows.AccountExists as exc:
            raise ValueError(str(exc)) from exc
        print(f"{account.account_id}\t{account.name}\t{account.canonical_user_id}")
    elif command == "list-accounts":
        print("ACCOUNT_ID\tNAME\tROLE\tCANONICAL_USER_ID")
        for account in await store.list_accounts():
            role = "admin" if account.is_admin else "tenant"
            print(f"{account.account_id}\t{account.name}\t{role}\t{account.canonical_user_id}")
    elif command == "create-key":
        account = await store.find_account(args.account)
        if account is None:
            raise LookupError(f"no account {args.account!r}")
        if (args.access_key_id is None) != (args.secret_access_key is None):
            raise ValueError("--access-key-id and --secret-access-key go together")
        try:
            key = await accounts.create_key(account.account_id, args.access_key_id, args.secret_access_key)
        except account_rows.AccessKeyExists as exc:
            raise ValueError(f"access key {exc} exists already") from exc
        print(f"{key.access_key_id}\t{key.secret_access_key}")
    elif command == "list-keys":
        account_id = None
        if args.account:
            account = await store.find_account(args.account)
            if account is None:
                raise LookupError(f"no account {args.account!r}")
            account_id = account.account_id
        print("ACCESS_KEY_ID\tACCOUNT_ID\tSTATUS")
        for key in await store.list_keys(account_id):
            print(f"{key.access_key_id}\t{key.account_id}\t{key.status}")
    else:
        try:
            if command == "delete-key":
                await store.delete_key(args.access_key_id)
            else:
                await store.set_key_status(args.access_key_id,
                                           "Inactive" if command == "disable-key" else "Active")
        except account_rows.NoSuchAccessKey as exc:
            raise LookupError(f"no access key {exc}") from exc
    return 0


def _serve_config(args: argparse.Namespace):
    return load_config(args.config, host=args.host, port=args.port, data_dir=args.data_dir,
                       tls_cert=args.tls_cert, tls_key=args.tls_key, region=args.region,
                       backend=args.backend, access_log=getattr(args, "access_log", None),
                       workers=getattr(args, "workers", None),
                       metadata=getattr(args, "metadata", None), blob_dir=getattr(args, "blob_dir", None))


def serve(args: argparse.Namespace) -> int:
    config = _serve_config(args)
    from gateway import workers  # noqa: PLC0415
    if config.workers is None:
        config.workers = workers.default_workers()
    if config.workers < 1:
        raise ValueError(f"--workers must be 1 or more, not {config.workers}")
    logging.basicConfig(level=getattr(logging, args.log_level.upper(), logging.INFO),
                        format="%(asctime)s %(levelname)s %(name)s"
                               f"{'[%(process)d]' if config.workers > 1 else ''}: %(message)s")
    from gateway import heap  # noqa: PLC0415
    heap.limit_arenas()      # before any thread: malloc arenas the workers share (gateway.heap)
    try:
        lock = data_dirs.lock_for_server(config.data_dir)
    except data_dirs.DataDirInUse as exc:
        print(f"nimbo: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            if config.workers > 1:
                sockets = workers.listen_reuseport(config.host, config.port, config.workers)
                config.port = sockets[0].getsockname()[1]
            else:
                sock = listen(config.host, config.port)
        except OSError as exc:
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            print(f"nimbo: cannot listen on {config.host}:{config.port}: {reason}"
                  f"{' (is another server running there? pass --port)' if exc.errno == errno.EADDRINUSE else ''}",
                  file=sys.stderr)
            return 1
        if config.workers > 1:   # a parent that supervises the workers (gateway.workers)
            return workers.Supervisor(config, sockets, _serve_worker).run(
                lambda: lock.announce(config.endpoint_url))
        runner = _event_loop_runner()
        try:
            runner(run_server(config, sock=sock, lock=lock))
        except MetadataUnavailable as exc:
            print(f"nimbo: {exc}", file=sys.stderr)
            return 1
    finally:
        lock.release()
    return 0


def _serve_worker(config, sock: socket.socket, ready_fd: int) -> int:
    """One worker process of ``--workers N``: the server, telling the parent when it serves."""
    async def main() -> None:
        ready = asyncio.Event()

        async def tell_parent() -> None:
            await ready.wait()
            os.write(ready_fd, b"r")
            os.close(ready_fd)
        told = asyncio.create_task(tell_parent())
        try:
            await run_server(config, ready, sock=sock)
        finally:
            told.cancel()
    _event_loop_runner()(main())
    return 0


def listen(host: str, port: int) -> socket.socket:
    """The server's listening socket, bound before anything starts, so that a port in use is one
    clear error at once (raises OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def _event_loop_runner():
    """uvloop's ``run`` when uvloop is installed (a faster event loop: ~30% more small requests a
    second here), else asyncio's; ``NIMBO_EVENT_LOOP=asyncio`` forces asyncio's."""
    if os.environ.get("NIMBO_EVENT_LOOP", "").lower() != "asyncio":
        try:
            import uvloop  # noqa: PLC0415
        except ImportError:
            pass
        else:
            return uvloop.run
    return asyncio.run


async def run_server(config, ready: asyncio.Event | None = None, *, sock: socket.socket | None = None,
                     lock: data_dirs.ServerLock | None = None) -> None:
    """Serve until SIGINT or SIGTERM, then shut down cleanly (also when start-up fails)."""
    from gateway.app import APP_CONTEXT, create_app  # noqa: PLC0415
    from gateway.connection_limits import GuardedSite, Limits  # noqa: PLC0415
    from gateway.connections import handler_options  # noqa: PLC0415
    if sock is None:
        sock = listen(config.host, config.port)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handler_cancellation=False, **handler_options(config))
    try:
        await runner.setup()
        ssl_context = None
        if config.tls_cert:
            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(config.tls_cert, config.tls_key)
        site = GuardedSite(runner, config.host, config.port, limits=Limits.from_config(config),
                           ssl_context=ssl_context, sock=sock)   # timeouts and a connection cap
        await site.start()
        await app[APP_CONTEXT].leadership.attach(runner)   # the leader's socket (gateway.leader)
        log.info("Nimbo serving %s (data in %s, regions %s); web console: %s/console/",
                 config.endpoint_url, config.data_dir, ", ".join(config.regions),
                 config.endpoint_url.rstrip("/"))
        if lock is not None:
            lock.announce(config.endpoint_url)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        leadership = app[APP_CONTEXT].leadership

        def stopping() -> None:
            stop.set()
            leadership.stopping = True      # no take-over as the leader from now on
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stopping)
        from gateway import heap  # noqa: PLC0415
        heap.settle()      # start-up's objects out of the collector's way (gateway.heap)
        if ready is not None:
            ready.set()
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
        sock.close()


if __name__ == "__main__":
    sys.exit(main())
