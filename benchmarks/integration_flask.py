#!/usr/bin/env python3
"""What a Flask request costs with coatcheck's Flask integration, against the alternatives.

Run: ``.venv/bin/python benchmarks/integration_flask.py [--iterations N] [--no-redis]``

One Flask view, a read-modify-write of a counter in the session (the client presents its
session cookie; the view adds one), called as a WSGI app with a prepared environ (no sockets,
no test client), through:

- ``flask cookie``: Flask's own signed-cookie session (the reference: no store at all);
- ``plain middleware``: :class:`coatcheck.wsgi.SessionMiddleware` around ``app.wsgi_app``, the
  view using ``request.environ["coatcheck.session"]`` (Flask itself with no secret key, so
  its own session is the null one);
- ``integration``: :mod:`coatcheck.contrib.flask` (``flask.session``), with its default
  serializer (Flask's tagged JSON), and ``integration json`` with coatcheck's JSON serializer,
  to show what the serializer alone costs;
- ``Flask-Session``: Flask-Session 0.8, on the same backend where it has one.

Backends, one row group each, every variant of a group on the same one: Redis at
127.0.0.1:6379 (the backend all three server-side variants share: coatcheck's ``RedisStore``
and Flask-Session's ``redis`` type), the in-process memory (coatcheck's ``MemoryStore``
against Flask-Session's ``cachelib`` ``SimpleCache``) and an SQLite file (coatcheck's
``SQLiteStore`` against Flask-Session's ``sqlalchemy`` type on SQLite).

Each figure is the median µs of ``--iterations`` requests after a warm-up, the variants of a
group taking turns request by request (``_overhead.timing.time_turns``) so load from elsewhere
hits them alike; on SQLite, Flask-Session takes its turns in a run of its own beside the
reference (the aftermath of its writes slowed whichever variant came next). The ratios:
integration / plain middleware (target <= 1.10: the integration adds little to the
middleware) and integration / Flask-Session (target < 1).
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from _flavours import SYNC
from _overhead.serving import cookie_from, last_headers, wsgi_call, wsgi_environ
from _overhead.timing import time_turns

SECRET = "bench-secret-key-" * 2
REDIS = ("127.0.0.1", 6379)
WSGIApp = Callable[..., Iterable[bytes]]


def _flask(name: str, secret: bool = True) -> Any:
    from flask import Flask

    app = Flask(name)
    if secret:
        app.config["SECRET_KEY"] = SECRET
    return app


def _bump(session: Any) -> str:
    session["n"] = session.get("n", 0) + 1
    return "ok"


def flask_cookie() -> WSGIApp:
    from flask import session

    app = _flask("cookie")
    app.add_url_rule("/", "index", lambda: _bump(session))
    return app  # type: ignore[no-any-return]


def plain_middleware(store_url: str) -> WSGIApp:
    from flask import request

    from coatcheck import SessionManager
    from coatcheck.wsgi import SessionMiddleware

    app = _flask("plain", secret=False)
    app.add_url_rule("/", "index", lambda: _bump(request.environ["coatcheck.session"]))
    manager = SessionManager(store_url, secret_keys=[SECRET], sign_cookie=True)
    create = getattr(manager.store, "create_tables", None)
    if create is not None:
        create()
    app.wsgi_app = SessionMiddleware(app.wsgi_app, manager)  # type: ignore[method-assign]
    return app  # type: ignore[no-any-return]


def integration(store_url: str, serializer: str = "flask") -> WSGIApp:
    from flask import session

    from coatcheck.contrib.flask import Session

    app = _flask("integration")
    app.config.update(SESSION_COATCHECK_STORE=store_url, SESSION_COATCHECK_SERIALIZER=serializer)
    app.config["TESTING"] = True  # no start-up warning in the output
    Session(app)
    app.config["TESTING"] = False
    app.add_url_rule("/", "index", lambda: _bump(session))
    return app  # type: ignore[no-any-return]


def flask_session(kind: str, place: str) -> WSGIApp:
    from flask import session
    from flask_session import Session

    app = _flask("flask-session")
    if kind == "redis":
        import redis

        app.config.update(
            SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(*REDIS), SESSION_KEY_PREFIX=place
        )
    elif kind == "memory":
        from cachelib import SimpleCache

        app.config.update(
            SESSION_TYPE="cachelib", SESSION_CACHELIB=SimpleCache(threshold=1_000_000)
        )
    else:
        from flask_sqlalchemy import SQLAlchemy

        app.config["SQLALCHEMY_DATABASE_URI"] = place
        app.config.update(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=SQLAlchemy(app))
    Session(app)
    app.add_url_rule("/", "index", lambda: _bump(session))
    if kind == "sqlite":
        with app.app_context():
            app.config["SESSION_SQLALCHEMY"].create_all()
    return app  # type: ignore[no-any-return]


def _request(app: WSGIApp) -> Callable[[int], object]:
    """One timed request of ``app``: its session made first, then the cookie presented."""
    wsgi_call(app, _environ(None))
    environ = _environ(cookie_from(last_headers))
    return lambda _: wsgi_call(app, dict(environ))


def _environ(cookie: str | None) -> dict[str, Any]:
    environ = wsgi_environ(cookie)
    environ.update({"wsgi.input": io.BytesIO(b""), "wsgi.errors": sys.stderr, "SCRIPT_NAME": ""})
    environ.update({"wsgi.version": (1, 0), "wsgi.multithread": False})
    environ.update({"wsgi.multiprocess": False, "wsgi.run_once": False})
    return environ


def _redis_up() -> bool:
    import socket

    try:
        with socket.create_connection(REDIS, timeout=1.0):
            return True
    except OSError:
        return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--no-redis", action="store_true", help="leave out the Redis group")
    args = parser.parse_args(argv)
    tag = uuid.uuid4().hex[:12]
    with tempfile.TemporaryDirectory() as tmp:
        groups: list[tuple[str, list[tuple[str, WSGIApp]]]] = []
        if not args.no_redis and _redis_up():
            url = f"redis://{REDIS[0]}:{REDIS[1]}/0?prefix=bench-coatcheck-{tag}:"
            groups.append(("redis", _variants(url, "redis", f"bench-flask-session-{tag}:")))
        groups.append(("memory", _variants("memory://", "memory", "")))
        sqlite = f"sqlite:///{Path(tmp) / 'coatcheck.db'}"
        groups.append(("sqlite", _variants(sqlite, "sqlite", f"sqlite:///{tmp}/fs.db")))
        print(f"median µs per read-modify-write request, {args.iterations} requests each")
        print(f"{'backend':<8} {'variant':<18} {'µs':>8}")
        for backend, variants in groups:
            figures: dict[str, float] = {}
            # On SQLite, Flask-Session in a run of its own, beside the reference: what its
            # requests leave behind (an fsync of its file through SQLAlchemy) would otherwise
            # fall on whichever coatcheck variant takes its turn next.
            runs = (variants[:2], variants[1:]) if backend == "sqlite" else (variants,)
            for run in runs:
                ops = [_request(app) for _, app in run]
                medians = SYNC.run(time_turns(SYNC, ops, args.iterations))
                figures.update(zip((name for name, _ in run), medians, strict=True))
            for name, value in figures.items():
                print(f"{backend:<8} {name:<18} {value:>8.1f}")
            ratio = figures["integration"] / figures["plain middleware"]
            peer = figures["integration"] / figures["Flask-Session"]
            print(f"{backend:<8} integration / plain middleware = {ratio:.2f} (target <= 1.10)")
            print(f"{backend:<8} integration / Flask-Session    = {peer:.2f} (target < 1)")
        _forget_redis(tag)
    return 0


def _variants(url: str, kind: str, place: str) -> list[tuple[str, WSGIApp]]:
    # Flask-Session and the reference first: main() times them apart from the others.
    return [
        ("Flask-Session", flask_session(kind, place)),
        ("flask cookie", flask_cookie()),
        ("plain middleware", plain_middleware(url)),
        ("integration", integration(url)),
        ("integration json", integration(url, "json")),
    ]


def _forget_redis(tag: str) -> None:
    """Delete this run's keys (unique prefixes: nothing else is touched)."""
    if not _redis_up():
        return
    import redis

    client = redis.Redis(*REDIS)
    for pattern in (f"bench-coatcheck-{tag}:*", f"bench-flask-session-{tag}:*"):
        keys = list(client.scan_iter(pattern))
        if keys:
            client.delete(*keys)
    client.close()


if __name__ == "__main__":
    sys.exit(main())
