"""The peer libraries' clients: Beaker, Flask-Session, Django and starsessions.

Each runs through its normal integration (Beaker's ``SessionMiddleware``, Flask +
Flask-Session, Django's ``WSGIHandler`` + ``SessionMiddleware``, Starlette + starsessions) and
does what coatcheck's client does: ``/`` reads the counter and writes it plus one.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

from .clients import ASGIClient, Client, WSGIClient
from .common import FIRST_VISIT, LIFETIME, REDIS

__all__ = ["beaker_client", "django_client", "flask_client", "starsessions_client"]


def bump(session: Any) -> str:
    """The request every peer's ``/`` makes: counter + 1, or the first visit; the new count."""
    if "counter" in session:
        session["counter"] += 1
    else:
        session.update(FIRST_VISIT)
        session["counter"] = 1
    return str(session["counter"])


# -- Beaker -----------------------------------------------------------------------------------


def _beaker_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    session = environ["beaker.session"]
    if environ["PATH_INFO"] != "/peek":
        bump(session)
        session.save()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(session.get("counter", 0)).encode()]


def beaker_client(kind: str, place: str) -> Client:
    from beaker.middleware import SessionMiddleware

    options: dict[str, Any] = {
        "session.type": kind,
        "session.timeout": LIFETIME,
        "session.auto": False,
        "session.key": "beaker.session.id",
    }
    if kind == "file":
        options["session.data_dir"] = place + "/data"
        options["session.lock_dir"] = place + "/lock"
    elif kind in ("ext:redis", "ext:database"):
        options["session.url"] = place
    return WSGIClient(SessionMiddleware(_beaker_app, options), "beaker.session.id")


# -- Flask-Session ----------------------------------------------------------------------------


def flask_client(kind: str, place: str) -> Client:
    from flask import Flask, session
    from flask_session import Session

    app = Flask("race")
    app.config["SECRET_KEY"] = "bench-secret-key-" * 2
    app.config["PERMANENT_SESSION_LIFETIME"] = LIFETIME
    if kind == "SimpleCache":
        from cachelib import SimpleCache

        app.config.update(
            SESSION_TYPE="cachelib",
            SESSION_CACHELIB=SimpleCache(threshold=1_000_000, default_timeout=LIFETIME),
        )
    elif kind == "FileSystemCache":
        from cachelib import FileSystemCache

        # threshold=500 is the documented example (performance.md measured the same).
        app.config.update(
            SESSION_TYPE="cachelib", SESSION_CACHELIB=FileSystemCache(place, threshold=500)
        )
    elif kind == "redis":
        import redis

        app.config.update(
            SESSION_TYPE="redis", SESSION_REDIS=redis.Redis(*REDIS), SESSION_KEY_PREFIX=place
        )
    elif kind == "sqlalchemy":
        from flask_sqlalchemy import SQLAlchemy

        app.config["SQLALCHEMY_DATABASE_URI"] = place
        app.config.update(SESSION_TYPE="sqlalchemy", SESSION_SQLALCHEMY=SQLAlchemy(app))
    else:
        raise ValueError(kind)
    Session(app)

    @app.route("/")
    def index() -> str:
        return bump(session)

    @app.route("/peek")
    def peek() -> str:
        return str(session.get("counter", 0))

    return WSGIClient(app, "session")


# -- Django -----------------------------------------------------------------------------------


def _django_bump(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(bump(request.session))


def _django_peek(request: Any) -> Any:
    from django.http import HttpResponse

    return HttpResponse(str(request.session.get("counter", 0)))


def _django_setup(db_path: str, redis_prefix: str) -> None:
    """Django settings are per process: configure once, with every backend the rows use."""
    from django.conf import settings

    if settings.configured:
        return
    from django.urls import path

    urls = types.ModuleType("race_urls")
    urls.urlpatterns = [path("", _django_bump), path("peek", _django_peek)]  # type: ignore[attr-defined]
    sys.modules["race_urls"] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-secret-key-" * 3,
        ALLOWED_HOSTS=["*"],
        ROOT_URLCONF="race_urls",
        INSTALLED_APPS=["django.contrib.sessions"],
        MIDDLEWARE=["django.contrib.sessions.middleware.SessionMiddleware"],
        DATABASES={
            "default": {
                "ENGINE": "django.db.backends.sqlite3",
                "NAME": db_path,
                "CONN_MAX_AGE": None,
            }
        },
        CACHES={
            "default": {
                "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                "OPTIONS": {"MAX_ENTRIES": 1_000_000},
            },
            "redis": {
                "BACKEND": "django.core.cache.backends.redis.RedisCache",
                "LOCATION": f"redis://{REDIS[0]}:{REDIS[1]}/0",
                "KEY_PREFIX": redis_prefix,
            },
        },
        SESSION_COOKIE_AGE=LIFETIME,
        LOGGING_CONFIG=None,
        USE_TZ=True,
    )
    import django

    django.setup()
    if not Path(db_path).exists() or Path(db_path).stat().st_size == 0:
        from django.core.management import call_command

        call_command("migrate", "sessions", verbosity=0)


def django_client(kind: str, db_path: str, redis_prefix: str) -> Client:
    _django_setup(db_path, redis_prefix)
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler

    settings.SESSION_ENGINE = (
        "django.contrib.sessions.backends.db"
        if kind == "db"
        else "django.contrib.sessions.backends.cache"
    )
    settings.SESSION_CACHE_ALIAS = "redis" if kind == "cache-redis" else "default"
    return WSGIClient(WSGIHandler(), "sessionid")


def starsessions_client(kind: str, place: str) -> Client:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.requests import Request
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route
    from starsessions import InMemoryStore, SessionAutoloadMiddleware, SessionMiddleware

    async def index(request: Request) -> PlainTextResponse:
        return PlainTextResponse(bump(request.session))

    async def peek(request: Request) -> PlainTextResponse:
        return PlainTextResponse(str(request.session.get("counter", 0)))

    memory = InMemoryStore() if kind == "memory" else None

    def make_app() -> Any:
        if memory is not None:
            store: Any = memory
        else:
            from starsessions.stores.redis import RedisStore

            # redis.asyncio clients belong to one event loop: one per worker loop.
            store = RedisStore(url=f"redis://{REDIS[0]}:{REDIS[1]}/0", prefix=place)
        return Starlette(
            routes=[Route("/", index), Route("/peek", peek)],
            middleware=[
                Middleware(SessionMiddleware, store=store, lifetime=LIFETIME),
                Middleware(SessionAutoloadMiddleware),
            ],
        )

    return ASGIClient(make_app)
