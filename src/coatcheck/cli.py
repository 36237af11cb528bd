"""The ``coatcheck`` command: set up, inspect and clean a session store, or run the demo.

::

    coatcheck init    [--store URL]             create the store's tables (where it has any)
    coatcheck drop    [--store URL] [--yes]     drop them, with every session in them
    coatcheck cleanup [--store URL]             purge expired sessions, print how many
    coatcheck stats   [--store URL] [--json]    live and expired sessions, payload bytes
    coatcheck show ID [--store URL] [--reveal]  one session's metadata and keys
    coatcheck demo    [--host H] [--port P]     the demo web app

``--store`` defaults to ``$COATCHECK_STORE``, else ``sqlite:///coatcheck-sessions.db``, for the
demo too, so ``coatcheck stats`` after the demo counts its sessions. A failure is one line on
stderr that names its cause and its fix, with an exit status of its own (listed in
``coatcheck --help`` and :mod:`coatcheck._cli_support`). Everything here goes through the
public store contract, so it works on any store.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from . import __version__
from ._cli_support import (
    DEFAULT_STORE,
    EPILOG,
    EXIT_CONFIG,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    Refused,
    call,
    cannot_listen,
    closed_pipe,
    default_store,
    fail,
    hint,
    logging_to,
    one_line,
    open_store,
    status,
)
from ._sansio.document import (
    DEFAULT,
    FLASH,
    FORM_TOKENS,
    REMOTE_ADDR,
    USER,
    Codec,
    Corrupt,
)
from ._sansio.ids import storage_key
from ._sansio.serializers import JSONSerializer, MsgpackSerializer, Serializer
from ._terminal import printable, timestamp
from .errors import CoatcheckError
from .stores.base import LOCKED, ClearExpired, Damaged, Load, Store

__all__ = ["DEFAULT_STORE", "build_parser", "main"]

_SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}


def _probe(store: Store, url: str) -> None:
    """One read of a key no session has: reaches the server (and checks its version), for a
    store whose statistics need no round trip (memcached's are all unknown)."""
    call(store, url, store.load, Load(storage_key("coatcheck-probe"), time.time()))


# -- commands --------------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with open_store(args.store) as store:
        create = getattr(store, "create_tables", None)
        if create is None:
            out.write(f"{store.name} has no tables to create; nothing to do\n")
            return EXIT_OK
        call(store, args.store, create)
        out.write(f"tables ready in {store.name}\n")
    return EXIT_OK


def _cmd_drop(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with open_store(args.store) as store:
        drop = getattr(store, "drop_tables", None)
        if drop is None:
            out.write(f"{store.name} has no tables to drop; nothing to do\n")
            return EXIT_OK
        if not args.yes:
            if not sys.stdin.isatty():
                raise Refused("drop deletes every session; pass --yes to confirm")
            err.write(f"Drop the session tables in {store.name}, and every session in them? [y/N] ")
            err.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                out.write("nothing dropped\n")
                return EXIT_OK
        call(store, args.store, drop)
        out.write(f"tables dropped in {store.name}\n")
    return EXIT_OK


def _cmd_cleanup(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with open_store(args.store) as store:
        # No progress bar: clear_expired works in batches inside the store but reports one
        # total at the end, so a bar could only jump from empty to full.
        removed = call(store, args.store, store.clear_expired, ClearExpired(time.time()))
        out.write(f"{removed}\n")
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with open_store(args.store) as store:
        stats = call(store, args.store, store.stats, time.time())
        if stats.live is None and stats.expired is None:
            _probe(store, args.store)  # unknown figures must not hide an unreachable server
        if args.json:
            document = {
                "store": store.name,
                "sessions": stats.live,
                "expired": stats.expired,
                "payload_bytes": stats.payload_bytes,
            }
            out.write(json.dumps(document) + "\n")
            return EXIT_OK
        rows = [
            ("store", store.name),
            ("sessions", stats.live),
            ("expired", stats.expired),
            ("payload bytes", stats.payload_bytes),
        ]
        for label, value in rows:
            out.write(f"{label + ':':<15}{'unknown' if value is None else value}\n")
    return EXIT_OK


def _describe(value: Any, serializer: Serializer) -> str:
    try:
        size = len(serializer.dumps(value))
    except Exception:
        return f"<redacted: {type(value).__name__}>"
    return f"<redacted: {type(value).__name__}, {size} bytes>"


def _cmd_show(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    serializer = _SERIALIZERS[args.serializer]()
    codec = Codec(serializer, None)
    # A signed cookie value is "id.MAC"; an id never contains a dot, so either form works.
    session_id = args.id.strip().partition(".")[0]
    with open_store(args.store) as store:
        now = time.time()
        record = call(store, args.store, store.load, Load(storage_key(session_id), now))
        if record is None or record is LOCKED:
            err.write("coatcheck: no session with that id\n")
            return EXIT_NOT_FOUND
        if isinstance(record, Damaged):
            err.write(f"coatcheck: the store holds no record of its own there ({record.reason})\n")
            return EXIT_NOT_FOUND
        try:
            document = codec.decode(record.payload)
        except Corrupt as corrupt:
            err.write(
                f"coatcheck: the stored session cannot be decoded with the {args.serializer} "
                f"serializer ({corrupt.reason}); version {record.version}, "
                f"{len(record.payload)} bytes\n"
            )
            return EXIT_NOT_FOUND
        expired = " [EXPIRED]" if record.expires_at <= now else ""
        data, meta = document.data, document.meta
        user = meta.get(USER)
        remote = meta.get(REMOTE_ADDR)
        rows = [
            ("store", store.name),
            ("created", timestamp(document.created_at, now)),
            ("accessed", timestamp(record.accessed_at, now)),
            ("expires", timestamp(record.expires_at, now) + expired),
            ("user", "-" if user is None else printable(repr(user))),
            ("remote addr", "-" if remote is None else printable(str(remote))),
            ("version", str(record.version)),
            ("payload", f"{len(record.payload)} bytes"),
            ("form tokens", str(len(meta.get(FORM_TOKENS) or ()))),
            ("flashed", str(len(meta.get(FLASH) or ()))),
        ]
        for label, value in rows:
            out.write(f"{label + ':':<13}{value}\n")
        items = [
            (key if ns == DEFAULT else f"{ns}/{key}", value)
            for ns, values in sorted(data.items())
            for key, value in sorted(values.items())
        ]
        out.write(f"keys:        {len(items)}\n")
        for label, value in items:
            shown = repr(value) if args.reveal else _describe(value, serializer)
            out.write(f"  {printable(label)}: {printable(shown)}\n")
    return EXIT_OK


def _cmd_demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from . import demo  # the demo pulls in wsgiref; only load it when asked

    with open_store(args.store) as store:
        manager = call(store, args.store, demo.create_manager, store)
        _probe(store, args.store)  # a store that is down fails here, not on the first page
        try:
            server = demo.make_demo_server(demo.create_app(manager), args.host, args.port)
        except OSError as exc:
            raise cannot_listen(args.host, args.port, exc) from exc
        demo.run(server, manager, out)
    return EXIT_OK


def _port(text: str) -> int:
    """An argparse type: a TCP port number, 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return port


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``coatcheck`` (exposed for documentation and tests)."""
    store_default = default_store()
    parser = argparse.ArgumentParser(
        prog="coatcheck",
        description="Manage a coatcheck session store, or run the demo app.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"coatcheck {__version__}")
    parser.add_argument(
        "-v", "--verbose", action="store_true", help="show log messages of coatcheck and drivers"
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--store",
            metavar="URL",
            default=store_default,
            help=f"store URL (default: $COATCHECK_STORE or {DEFAULT_STORE})",
        )
        return sub

    command("init", "create the store's tables (idempotent)").set_defaults(run=_cmd_init)
    drop = command("drop", "drop the store's tables, deleting every session")
    drop.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    drop.set_defaults(run=_cmd_drop)
    command("cleanup", "delete expired sessions and print how many").set_defaults(run=_cmd_cleanup)
    stats = command("stats", "count live and expired sessions and their payload bytes")
    stats.add_argument("--json", action="store_true", help="print one JSON object")
    stats.set_defaults(run=_cmd_stats)
    show = command("show", "print one session's metadata and keys (values redacted)")
    show.add_argument(
        "id",
        metavar="ID",
        help="the session id, or the (signed) cookie value; after '--' when it starts with '-'",
    )
    show.add_argument("--reveal", action="store_true", help="print the values too")
    show.add_argument(
        "--serializer",
        choices=sorted(_SERIALIZERS),
        default="json",
        help="the serializer the application uses (default: json)",
    )
    show.set_defaults(run=_cmd_show)

    demo = commands.add_parser(
        "demo",
        help="run the demo web app",
        description="Run the demo web app (visit counter, login, form tokens, flash messages).",
    )
    demo.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    demo.add_argument("--port", type=_port, default=8000, help="port to listen on (8000; 0: any)")
    demo.add_argument(
        "--store",
        metavar="URL",
        default=store_default,
        # The same default as the other commands', so they see the demo's sessions.
        help=f"store URL (default: $COATCHECK_STORE or {DEFAULT_STORE})",
    )
    demo.set_defaults(run=_cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coatcheck`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # usage errors and --help: argparse has printed already
        return exc.code if isinstance(exc.code, int) else EXIT_CONFIG
    out, err = sys.stdout, sys.stderr
    run: Callable[[argparse.Namespace, IO[str], IO[str]], int] = args.run
    # Commands report failures themselves, in one line; drivers log even routine retries as
    # errors, so their records show only with --verbose. The demo shows warnings: its security
    # log lines (a refused cookie, say) are part of what it demonstrates.
    level = logging.WARNING if run is _cmd_demo else logging.CRITICAL
    if args.verbose:
        level = logging.INFO
    try:
        with logging_to(err, level):
            code = run(args, out, err)
            out.flush()  # here, so a closed pipe is seen while it can still be handled
            return code
    except BrokenPipeError:
        return closed_pipe(err)
    except KeyboardInterrupt:
        return fail(err, "interrupted", EXIT_INTERRUPTED)
    except CoatcheckError as exc:
        return fail(err, f"error: {one_line(str(exc))}{hint(exc)}", status(exc))
