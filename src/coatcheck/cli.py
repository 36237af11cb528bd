"""The ``coatcheck`` command: set up, inspect and clean a session store, or run the demo.

::

    coatcheck init    [--store URL]             create the store's tables (where it has any)
    coatcheck drop    [--store URL] [--yes]     drop them, with every session in them
    coatcheck cleanup [--store URL]             purge expired sessions, print how many
    coatcheck stats   [--store URL] [--json]    live and expired sessions, payload bytes
    coatcheck show ID [--store URL] [--reveal]  one session's metadata and keys
    coatcheck demo    [--host H] [--port P]     the demo web app

``--store`` defaults to ``$COATCHECK_STORE``, else ``sqlite:///coatcheck-sessions.db``. Errors
are one line on stderr: exit 2 for bad configuration, 3 for a failing store, 1 for an unknown
session id. Everything here goes through the public store contract, so it works on any store.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import IO, Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

from . import __version__
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
from ._sync.driver import store_failure
from ._terminal import Progress, printable, timestamp
from .errors import CoatcheckError, ConfigurationError, StoreError, StoreUnavailable
from .stores import store_from_url
from .stores.base import LOCKED, ClearExpired, Load, Store

__all__ = ["DEFAULT_STORE", "build_parser", "main"]

DEFAULT_STORE = "sqlite:///coatcheck-sessions.db"
"""The store used when neither ``--store`` nor ``$COATCHECK_STORE`` is given."""

EXIT_OK = 0
EXIT_NOT_FOUND = 1
EXIT_CONFIG = 2  # also what argparse uses for a usage error
EXIT_STORE = 3

T = TypeVar("T")

_SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}


class _Refused(CoatcheckError):
    """The command will not do what was asked (say, drop tables without confirmation)."""


# -- helpers ---------------------------------------------------------------------------------


def _safe_url(url: str) -> str:
    """``url`` without a password, fit for an error message."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
        host = parts.netloc.rpartition("@")[2]
        user = parts.username or ""
        return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
    except ValueError:
        return "<unparsable store URL>"


@contextmanager
def _open_store(url: str) -> Iterator[Store]:
    """The store for ``url``, closed afterwards; construction failures become coatcheck errors."""
    try:
        store = store_from_url(url)
    except CoatcheckError:
        raise
    except ImportError as exc:
        raise ConfigurationError(
            f"the store for {_safe_url(url)} needs a driver that is not installed ({exc.name}); "
            "install coatcheck with the matching extra"
        ) from exc
    except Exception as exc:
        detail = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, (OSError, TimeoutError)):
            raise StoreUnavailable(_safe_url(url), detail) from exc
        raise StoreError(_safe_url(url), detail) from exc
    try:
        yield store
    finally:
        # A failing close must not hide the command's own result or error.
        with suppress(Exception):
            store.close()


def _call(store: Store, fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)``, with a driver exception turned into StoreError/StoreUnavailable."""
    try:
        return fn(*args)
    except CoatcheckError:
        raise
    except Exception as exc:
        error = store_failure(store, exc)
        raise error from exc


@contextmanager
def _logging_to(stream: IO[str], level: int) -> Iterator[None]:
    """Send log records of ``level`` and above to ``stream`` while a command runs.

    Only when nothing configured logging already (an embedding program or pytest did): without
    it, Python's last-resort handler would print every driver's retry warnings (psycopg's pool
    reconnecting, say) around the one-line error this command prints.
    """
    root = logging.getLogger()
    if root.handlers:
        yield
        return
    handler = logging.StreamHandler(stream)
    handler.setLevel(level)  # also for drivers that set their own logger's level (psycopg)
    handler.setFormatter(logging.Formatter("coatcheck: %(name)s: %(message)s"))
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


# -- commands --------------------------------------------------------------------------------


def _cmd_init(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with _open_store(args.store) as store:
        create = getattr(store, "create_tables", None)
        if create is None:
            out.write(f"{store.name} has no tables to create; nothing to do\n")
            return EXIT_OK
        _call(store, create)
        out.write(f"tables ready in {store.name}\n")
    return EXIT_OK


def _cmd_drop(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with _open_store(args.store) as store:
        drop = getattr(store, "drop_tables", None)
        if drop is None:
            out.write(f"{store.name} has no tables to drop; nothing to do\n")
            return EXIT_OK
        if not args.yes:
            if not sys.stdin.isatty():
                raise _Refused("drop deletes every session; pass --yes to confirm")
            err.write(f"Drop the session tables in {store.name}, and every session in them? [y/N] ")
            err.flush()
            if sys.stdin.readline().strip().lower() not in ("y", "yes"):
                out.write("nothing dropped\n")
                return EXIT_OK
        _call(store, drop)
        out.write(f"tables dropped in {store.name}\n")
    return EXIT_OK


def _cmd_cleanup(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with _open_store(args.store) as store:
        now = time.time()
        expected = _call(store, store.stats, now).expired
        progress = Progress(err, expected, "removing expired sessions")
        if expected != 0:
            progress.update(0)
        # clear_expired already works in bounded batches inside the store (the contract says
        # so); it reports one total, so the bar moves once per call. Another call after the
        # first would find nothing more: every record it could remove expired before `now`.
        removed = _call(store, store.clear_expired, ClearExpired(now))
        progress.update(removed)
        progress.finish()
        out.write(f"{removed}\n")
    return EXIT_OK


def _cmd_stats(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    with _open_store(args.store) as store:
        stats = _call(store, store.stats, time.time())
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
    with _open_store(args.store) as store:
        now = time.time()
        record = _call(store, store.load, Load(storage_key(session_id), now))
        if record is None or record is LOCKED:
            err.write("coatcheck: no session with that id\n")
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
    from .demo import serve  # the demo pulls in wsgiref; only load it when asked

    serve(host=args.host, port=args.port, store_url=args.store, out=out)
    return EXIT_OK


# -- parser ----------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for ``coatcheck`` (exposed for documentation and tests)."""
    default_store = os.environ.get("COATCHECK_STORE") or DEFAULT_STORE
    parser = argparse.ArgumentParser(
        prog="coatcheck",
        description="Manage a coatcheck session store, or run the demo app.",
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
            default=default_store,
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
    demo.add_argument("--port", type=int, default=8000, help="port to listen on (8000; 0: any)")
    demo.add_argument(
        "--store",
        metavar="URL",
        default="sqlite:///coatcheck-demo.db",
        # Not $COATCHECK_STORE: that names the real application's store.
        help="store URL (default: sqlite:///coatcheck-demo.db)",
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
        with _logging_to(err, level):
            return run(args, out, err)
    except (ConfigurationError, _Refused) as exc:
        err.write(f"coatcheck: error: {exc}\n")
        return EXIT_CONFIG
    except StoreError as exc:
        err.write(f"coatcheck: error: {exc}\n")
        return EXIT_STORE
    except CoatcheckError as exc:
        err.write(f"coatcheck: error: {exc}\n")
        return EXIT_NOT_FOUND
    except KeyboardInterrupt:
        err.write("coatcheck: interrupted\n")
        return 130
