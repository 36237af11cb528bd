"""What the Django engine reads from ``settings``, and the two managers built from it.

Django's own settings are used where they mean the same thing (``SECRET_KEY`` and
``SECRET_KEY_FALLBACKS`` sign the cookie, ``SESSION_COOKIE_AGE`` is the idle timeout,
``SESSION_SERIALIZER`` the serializer); the cookie itself is Django's ``SessionMiddleware``'s to
set. Everything that is coatcheck's alone is one dict, ``settings.COATCHECK`` (:data:`OPTIONS`).

The managers are built once, at the first session, and rebuilt when one of those settings
changes (Django's ``setting_changed`` signal, which ``override_settings`` sends): a
:class:`~coatcheck.SessionManager` for the sync methods and an
:class:`~coatcheck.AsyncSessionManager` for the ``a*`` ones, on the same store URL. Stores are
kept per URL for the life of the process, so a settings change that keeps the URL keeps the
connections (and a ``memory://`` store keeps its sessions).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings  # type: ignore[import-untyped]
from django.core.signals import setting_changed  # type: ignore[import-untyped]
from django.utils.module_loading import import_string  # type: ignore[import-untyped]

from ..._async.manager import AsyncSessionManager
from ..._sansio.config import SessionConfig
from ..._sansio.cookies import CookieConfig
from ..._sansio.serializers import JSONSerializer, MsgpackSerializer, Serializer
from ..._sync.manager import SessionManager
from ...errors import ConfigurationError, SerializationError
from ...stores import async_store_from_url, store_from_url
from ...stores.base import AsyncStore, Store
from ._memory import SharedMemoryStore

__all__ = ["OPTIONS", "DjangoSerializer", "Engine", "close_stores", "engine", "reset", "stores"]

#: Every ``settings.COATCHECK`` key and its default (see docs/django.md).
OPTIONS: dict[str, Any] = {
    "STORE": None,
    "CONCURRENCY": "merge",
    "MERGE_CONFLICT": "last-writer",
    "LOCK_TIMEOUT": 30.0,
    "LOCK_WAIT": 10.0,
    # Django's sessions end SESSION_COOKIE_AGE after their last save and have no cap: none here
    # either unless asked for.
    "ABSOLUTE_TIMEOUT": None,
    "ACCESS_RESOLUTION": 60.0,
    "ID_BYTES": 32,
    "MAX_PAYLOAD_BYTES": 256 * 1024,
    "SERIALIZER": None,
    "CLEANUP_PROBABILITY": 0.0,
    "CLOCK": None,
}
# The settings a manager is built from: a change to any of them rebuilds the managers.
WATCHED = frozenset(
    {
        "COATCHECK",
        "SECRET_KEY",
        "SECRET_KEY_FALLBACKS",
        "SESSION_COOKIE_AGE",
        "SESSION_COOKIE_NAME",
        "SESSION_SERIALIZER",
    }
)
_DJANGO_JSON = (
    "django.contrib.sessions.serializers.JSONSerializer",
    "django.core.signing.JSONSerializer",
)
_PURPOSE = b"coatcheck.contrib.django: session cookie key"


class DjangoSerializer:
    """A Django session serializer (``SESSION_SERIALIZER``: a class whose instances have
    ``dumps(obj) -> bytes`` and ``loads(bytes)``) as a coatcheck serializer."""

    def __init__(self, path: str) -> None:
        self._inner = import_string(path)()
        self.format_name = f"django:{path}"

    def dumps(self, obj: Any) -> bytes:
        """Encode with the Django serializer; SerializationError for what it refuses."""
        try:
            data = self._inner.dumps(obj)
        except (TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(f"{self.format_name} cannot store it: {exc}") from exc
        return data if isinstance(data, bytes) else str(data).encode("utf-8")

    def loads(self, data: bytes) -> Any:
        """Decode with the Django serializer; ValueError for any bad input."""
        try:
            return self._inner.loads(bytes(data))
        except Exception as exc:
            raise ValueError(f"not a {self.format_name} payload: {exc!r}") from exc


@dataclass(frozen=True)
class Engine:
    """The managers of the current settings, both on the store of ``COATCHECK["STORE"]``."""

    manager: SessionManager
    async_manager: AsyncSessionManager
    config: SessionConfig


def _seconds(value: object, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConfigurationError(f"{key} must be seconds (a number or a timedelta) or None")


def _serializer(option: object) -> Serializer:
    if option is None:
        path = getattr(settings, "SESSION_SERIALIZER", _DJANGO_JSON[0])
        if path in _DJANGO_JSON:
            # coatcheck's tagged JSON stores everything Django's JSON does, the same way, and
            # brings back exactly what went in where Django's would change it (a tuple, a
            # datetime); see docs/django.md.
            return JSONSerializer()
        return DjangoSerializer(path)
    if option == "json":
        return JSONSerializer()
    if option == "msgpack":
        return MsgpackSerializer()
    if isinstance(option, str):
        return DjangoSerializer(option)
    if callable(getattr(option, "dumps", None)) and callable(getattr(option, "loads", None)):
        serializer: Serializer = option  # type: ignore[assignment]
        return serializer
    raise ConfigurationError(f'COATCHECK["SERIALIZER"] {option!r}: use "json", "msgpack", a path')


def _derive(secret: str | bytes) -> bytes:
    # Django takes a secret of any length; coatcheck's signer wants 16 bytes or more. A keyed
    # derivation gives each Django secret a 32-byte key for this purpose only.
    raw = secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


def options() -> dict[str, Any]:
    """``settings.COATCHECK`` over :data:`OPTIONS`; ConfigurationError for an unknown key."""
    given = getattr(settings, "COATCHECK", None) or {}
    unknown = set(given) - set(OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown COATCHECK setting(s): {', '.join(sorted(unknown))}; "
            f"known: {', '.join(OPTIONS)}"
        )
    return {**OPTIONS, **given}


def store_url() -> str:
    """``COATCHECK["STORE"]``, which must be set."""
    url = options()["STORE"]
    if not isinstance(url, str) or not url:
        raise ConfigurationError(
            'settings.COATCHECK["STORE"] must name the session store, such as '
            '"sqlite:///sessions.sqlite3" or "redis://127.0.0.1:6379/0" (see docs/django.md)'
        )
    return url


def build_config(values: dict[str, Any]) -> SessionConfig:
    """The SessionConfig of the current settings."""
    secret = getattr(settings, "SECRET_KEY", "")
    if not secret:
        raise ConfigurationError("the coatcheck session engine needs settings.SECRET_KEY")
    fallbacks = list(getattr(settings, "SECRET_KEY_FALLBACKS", ()) or ())
    age = _seconds(getattr(settings, "SESSION_COOKIE_AGE", 1209600), "SESSION_COOKIE_AGE")
    return SessionConfig(
        idle_timeout=age,
        absolute_timeout=_seconds(values["ABSOLUTE_TIMEOUT"], 'COATCHECK["ABSOLUTE_TIMEOUT"]'),
        access_resolution=_seconds(values["ACCESS_RESOLUTION"], "ACCESS_RESOLUTION") or 0.0,
        id_bytes=values["ID_BYTES"],
        secret_keys=tuple(_derive(key) for key in (secret, *fallbacks)),
        sign_cookie=True,
        # Only the name matters here (the signature's purpose): Django's middleware sets the
        # cookie with its own SESSION_COOKIE_* settings.
        cookie=CookieConfig(name=getattr(settings, "SESSION_COOKIE_NAME", "sessionid")),
        serializer=_serializer(values["SERIALIZER"]),
        max_payload_bytes=values["MAX_PAYLOAD_BYTES"],
        cleanup_probability=values["CLEANUP_PROBABILITY"],
        concurrency=values["CONCURRENCY"],
        merge_conflict=values["MERGE_CONFLICT"],
        lock_timeout=values["LOCK_TIMEOUT"],
        lock_wait=values["LOCK_WAIT"],
        # Django keeps an emptied session (and its cookie) until flush(), which is logout.
        destroy_when_emptied=False,
    )


_lock = threading.Lock()
_current: Engine | None = None
_stores: dict[str, tuple[Store, AsyncStore]] = {}


def stores(url: str) -> tuple[Store, AsyncStore]:
    """The sync and async stores of ``url``, built once per process."""
    pair = _stores.get(url)
    if pair is None:
        sync = store_from_url(url)
        # memory:// lives in this process: both flavours must be the same dict, or the async
        # methods would not see what the sync ones stored.
        asynchronous = SharedMemoryStore(sync) if url.startswith("memory:") else None
        pair = (sync, asynchronous or async_store_from_url(url))
        _stores[url] = pair
    return pair


def close_stores() -> None:
    """Close every store this process built and forget it (and the managers): for tests, and
    for a process that is about to exit. The next session builds them again."""
    global _current
    with _lock:
        _current = None
        pairs = list(_stores.values())
        _stores.clear()
    for sync, asynchronous in pairs:
        sync.close()
        if not isinstance(asynchronous, SharedMemoryStore):
            # Its connections belong to event loops that may be gone; a loop of its own
            # closes what is left.
            asyncio.run(asynchronous.aclose())


def engine() -> Engine:
    """The managers for the settings as they are now."""
    current = _current
    if current is not None:
        return current
    with _lock:
        return _build()


def _build() -> Engine:
    global _current
    if _current is not None:
        return _current
    values = options()
    config = build_config(values)
    sync, asynchronous = stores(store_url())
    clock: Callable[[], float] | None = values["CLOCK"]
    _current = Engine(
        SessionManager(sync, config, clock=clock),
        AsyncSessionManager(asynchronous, config, clock=clock),
        config,
    )
    return _current


def reset(**kwargs: Any) -> None:
    """Forget the managers when a setting they were built from changes (a ``setting_changed``
    receiver; also callable directly)."""
    global _current
    setting = kwargs.get("setting")
    if setting is None or setting in WATCHED:
        with _lock:
            _current = None


setting_changed.connect(reset, dispatch_uid="coatcheck.contrib.django.reset")
