"""The rows of the race table: which library, variant and store, and how to place a trial."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clients import Client, Spec, coatcheck_client, coatcheck_place
from .common import REDIS, SERVERS, delete_redis_keys
from .peers import beaker_client, django_client, flask_client, starsessions_client

__all__ = ["Row", "coatcheck_rows", "peer_rows"]


@dataclass(frozen=True)
class Row:
    library: str
    variant: str
    store: str
    shared: bool  # several processes can share the store
    server: str | None  # the server it needs, if any
    kind: str  # "counter" or "keys"
    place: Callable[[Path], Any]  # context manager yielding the Spec


Place = Callable[[Path], AbstractContextManager[Spec]]


def _row(library: str, variant: str, store: str, kind: str, place: Place) -> Row:
    server = store if store in SERVERS else None
    return Row(library, variant, store, store != "memory", server, kind, place)


def coatcheck_rows() -> list[Row]:
    stores = ("memory", "file", "sqlite", "redis", "memcached", "postgresql", "mysql")
    modes: list[tuple[str, dict[str, Any], str]] = [
        ("none", {"mode": "none"}, "counter"),
        ("merge", {"mode": "merge"}, "counter"),
        ("merge raise+retry", {"mode": "merge", "policy": "raise", "retry": True}, "counter"),
        ("merge incr", {"mode": "merge", "incr": True}, "counter"),
        ("merge keys", {"mode": "merge", "kind": "keys"}, "keys"),
        ("lock", {"mode": "lock"}, "counter"),
    ]
    rows = []
    for label, options, kind in modes:
        for store in stores:

            @contextmanager
            def place(
                workdir: Path, store: str = store, options: dict[str, Any] = options
            ) -> Iterator[Spec]:
                with coatcheck_place(store, workdir) as url:
                    yield Spec(coatcheck_client, {"url": url, **options})

            rows.append(_row("coatcheck", label, store, kind, place))
    return rows


def _places(
    factory: Callable[..., Client], stem: str, redis: Callable[[str], str], clean_redis: bool
) -> Callable[[str, str], Place]:
    """A peer's place for one trial, by store: ``redis(unique)`` (a URL or a key prefix,
    whose keys are deleted afterwards when ``clean_redis``), a SQLite URL, or a directory."""

    def for_kind(kind: str, store: str) -> Place:
        @contextmanager
        def place(workdir: Path) -> Iterator[Spec]:
            unique = uuid.uuid4().hex[:12]
            if store == "redis":
                where = redis(unique)
            elif store == "sqlite":
                where = f"sqlite:///{workdir / f'{stem}-{unique}.db'}"
            else:
                where = str(workdir / f"{stem}-{unique}")
            try:
                yield Spec(factory, {"kind": kind, "place": where})
            finally:
                if clean_redis and store == "redis":
                    delete_redis_keys(where + "*")

        return place

    return for_kind


# Beaker's redis keys are beaker_cache:<session id>:*; Runner.trial removes them.
_beaker = _places(beaker_client, "beaker", lambda _: f"redis://{REDIS[0]}:{REDIS[1]}/0", False)
_flask = _places(flask_client, "flask", lambda unique: f"fs-race-{unique}:", True)
_starsessions = _places(starsessions_client, "ss", lambda unique: f"ss-race-{unique}.", True)


def _django(kind: str, store: str) -> Place:
    @contextmanager
    def place(workdir: Path) -> Iterator[Spec]:
        # One settings object per process: every Django row shares the database file and the
        # Redis key prefix of this benchmark run.
        yield Spec(
            django_client,
            {
                "kind": kind,
                "db_path": str(workdir / "django.db"),
                "redis_prefix": f"dj-race-{workdir.name}",
            },
        )

    return place


# library, variant, store, where its places come from, the client's kind
_PEERS: list[tuple[str, str, str, Callable[[str, str], Place], str]] = [
    ("Beaker", "memory", "memory", _beaker, "memory"),
    ("Beaker", "file", "file", _beaker, "file"),
    ("Beaker", "ext:redis", "redis", _beaker, "ext:redis"),
    ("Beaker", "ext:database", "sqlite", _beaker, "ext:database"),
    ("Flask-Session", "cachelib SimpleCache", "memory", _flask, "SimpleCache"),
    ("Flask-Session", "cachelib FileSystemCache", "file", _flask, "FileSystemCache"),
    ("Flask-Session", "redis", "redis", _flask, "redis"),
    ("Flask-Session", "sqlalchemy", "sqlite", _flask, "sqlalchemy"),
    ("Django", "db", "sqlite", _django, "db"),
    ("Django", "cache (locmem)", "memory", _django, "cache-locmem"),
    ("Django", "cache (redis)", "redis", _django, "cache-redis"),
    ("starsessions", "memory", "memory", _starsessions, "memory"),
    ("starsessions", "redis", "redis", _starsessions, "redis"),
]


def peer_rows() -> list[Row]:
    return [
        _row(library, variant, store, "counter", places(kind, store))
        for library, variant, store, places, kind in _PEERS
    ]
