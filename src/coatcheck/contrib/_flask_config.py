"""What the Flask and Quart integrations decide, written once and free of I/O.

Both frameworks keep their settings in ``app.config`` under the same keys and hand the session
interface a Werkzeug response, so everything except the store calls lives here:

- coatcheck's own options (``SESSION_COATCHECK_*``), read once by ``init_app``
  (:func:`read_options`);
- Flask's cookie and secret settings, read per request as Flask does, with one
  :class:`~coatcheck.SessionConfig` (and one manager) per distinct set of them
  (:class:`Managers`);
- a permanent session's lifetime (:func:`permanent_lifetime`);
- per-route concurrency modes (:func:`session_mode`, :class:`RouteModes`);
- the start-up warning (:func:`startup_warning`).

What a save's outcome or a refusal does to a Werkzeug response is in :mod:`._flask_responses`.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, TypeVar
from urllib.parse import quote

from .._sansio.config import MODES, SessionConfig
from .._sansio.cookies import MAX_COOKIE_AGE, CookieConfig
from .._sansio.headers import RequestMode
from .._sansio.serializers import JSONSerializer, MsgpackSerializer, Serializer
from ..errors import ConfigurationError
from ._flask_session import TaggedJSONSerializer

__all__ = [
    "MODE_ATTRIBUTE",
    "OPTIONS",
    "Managers",
    "ModeFor",
    "Options",
    "RouteModes",
    "permanent_lifetime",
    "read_options",
    "session_mode",
    "startup_warning",
]

#: ``mode_for(method, path)``: a request's mode, or None for the configured one.
ModeFor = Callable[[str, str], "RequestMode | None"]
F = TypeVar("F", bound=Callable[..., Any])
M = TypeVar("M")

#: The view-function attribute :func:`session_mode` sets.
MODE_ATTRIBUTE = "coatcheck_session_mode"
#: The file the default store keeps its sessions in, inside ``app.instance_path``.
DEFAULT_DATABASE = "coatcheck-sessions.db"
_PURPOSE = b"coatcheck.contrib.flask: session cookie key"
# Managers kept per interface: an app normally has one set of settings (two while a secret
# rotates); tests that change them per request must not grow the cache without end.
_MAX_MANAGERS = 32
_SERIALIZERS: dict[str, Callable[[], Serializer]] = {
    "flask": TaggedJSONSerializer,
    "json": JSONSerializer,
    "msgpack": MsgpackSerializer,
}

#: Every ``SESSION_COATCHECK_*`` key and its default (the SessionConfig field it sets, if any,
#: is the key's lowercased suffix).
OPTIONS: dict[str, Any] = {
    "SESSION_COATCHECK_STORE": None,
    "SESSION_COATCHECK_CREATE_TABLES": True,
    "SESSION_COATCHECK_SERIALIZER": "flask",
    "SESSION_COATCHECK_CONCURRENCY": "merge",
    "SESSION_COATCHECK_MERGE_CONFLICT": "last-writer",
    "SESSION_COATCHECK_LOCK_TIMEOUT": 30.0,
    "SESSION_COATCHECK_LOCK_WAIT": 10.0,
    "SESSION_COATCHECK_IDLE_TIMEOUT": 30 * 60,
    "SESSION_COATCHECK_ABSOLUTE_TIMEOUT": 12 * 60 * 60,
    "SESSION_COATCHECK_PERMANENT_ABSOLUTE_TIMEOUT": None,
    "SESSION_COATCHECK_ACCESS_RESOLUTION": 60.0,
    "SESSION_COATCHECK_MAX_PAYLOAD_BYTES": 256 * 1024,
    "SESSION_COATCHECK_BIND_REMOTE_ADDR": False,
    "SESSION_COATCHECK_BIND_USER_AGENT": False,
    "SESSION_COATCHECK_REGENERATE_EVERY_REQUEST": False,
    "SESSION_COATCHECK_CLEANUP_PROBABILITY": 0.0,
    "SESSION_COATCHECK_CACHE_CONTROL": "no-store",
}
# The options handed to SessionConfig as they are, apart from the durations.
_PLAIN_FIELDS = (
    "concurrency",
    "merge_conflict",
    "lock_timeout",
    "lock_wait",
    "max_payload_bytes",
    "bind_remote_addr",
    "bind_user_agent",
    "regenerate_every_request",
    "cleanup_probability",
)
_DURATIONS = ("idle_timeout", "absolute_timeout", "access_resolution")


def _seconds(value: object, key: str) -> float | None:
    """A duration setting in seconds: a number, a ``timedelta``, or None (off)."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    raise ConfigurationError(f"{key} must be seconds (a number or a timedelta) or None")


@dataclass(frozen=True)
class Options:
    """coatcheck's own settings for one app, read by ``init_app``."""

    #: A store URL, or a ready store object of the right flavour.
    store: Any
    create_tables: bool
    #: The SessionConfig fields that do not come from Flask's own keys.
    fields: dict[str, Any] = field(default_factory=dict)
    cache_control: str = "no-store"
    permanent_absolute_timeout: float | None = None


def default_store_url(instance_path: str) -> str:
    """The embedded default: an SQLite file in the app's instance folder (created if missing)."""
    os.makedirs(instance_path, exist_ok=True)
    path = os.path.abspath(os.path.join(instance_path, DEFAULT_DATABASE))
    return "sqlite:///" + quote(path)


def read_options(config: Mapping[str, Any], instance_path: str) -> Options:
    """coatcheck's options from ``app.config``; an unknown ``SESSION_COATCHECK_*`` key (a typo)
    is a ConfigurationError rather than a setting silently left at its default."""
    unknown = sorted(k for k in config if k.startswith("SESSION_COATCHECK_") and k not in OPTIONS)
    if unknown:
        raise ConfigurationError(
            f"unknown setting(s) {', '.join(unknown)}; coatcheck reads {', '.join(OPTIONS)}"
        )
    value = {key: config.get(key, default) for key, default in OPTIONS.items()}
    fields: dict[str, Any] = {
        name: value["SESSION_COATCHECK_" + name.upper()] for name in _PLAIN_FIELDS
    }
    for name in _DURATIONS:
        key = "SESSION_COATCHECK_" + name.upper()
        fields[name] = _seconds(value[key], key)
    if fields["access_resolution"] is None:
        raise ConfigurationError("SESSION_COATCHECK_ACCESS_RESOLUTION cannot be None")
    serializer = value["SESSION_COATCHECK_SERIALIZER"]
    if isinstance(serializer, str):
        if serializer not in _SERIALIZERS:
            raise ConfigurationError(
                f"SESSION_COATCHECK_SERIALIZER {serializer!r}: use one of "
                f"{', '.join(_SERIALIZERS)} or a serializer object"
            )
        serializer = _SERIALIZERS[serializer]()
    fields["serializer"] = serializer
    # Flask's users expect session.clear() to log out (see docs/flask.md).
    fields["destroy_when_emptied"] = True
    store = value["SESSION_COATCHECK_STORE"]
    options = Options(
        store=default_store_url(instance_path) if store is None else store,
        create_tables=bool(value["SESSION_COATCHECK_CREATE_TABLES"]),
        fields=fields,
        cache_control=value["SESSION_COATCHECK_CACHE_CONTROL"],
        permanent_absolute_timeout=_seconds(
            value["SESSION_COATCHECK_PERMANENT_ABSOLUTE_TIMEOUT"],
            "SESSION_COATCHECK_PERMANENT_ABSOLUTE_TIMEOUT",
        ),
    )
    # Fail at start-up, not on the first request: a throwaway config with a placeholder key.
    SessionConfig(secret_keys=(bytes(32),), sign_cookie=True, **fields)
    return options


def _key_bytes(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _derive(secret: str | bytes) -> bytes:
    # Flask takes a secret of any length; coatcheck's Signer wants 16 bytes or more. A keyed
    # derivation turns each Flask secret into a 32-byte key of its own (for this purpose only)
    # and keeps Flask's behaviour; it adds no entropy, which is why a short secret is named in
    # the start-up warning.
    return hmac.new(_key_bytes(secret), _PURPOSE, hashlib.sha256).digest()


def _samesite(value: object) -> Any:
    if value is None or value is False:
        return None
    if isinstance(value, str) and value.lower() in ("lax", "strict", "none"):
        return value.lower()
    raise ConfigurationError(
        f"SESSION_COOKIE_SAMESITE must be 'Lax', 'Strict', 'None' or None, not {value!r}"
    )


class Managers(Generic[M]):
    """One manager per distinct set of Flask's cookie and secret settings, all on one store.

    Flask reads ``SESSION_COOKIE_*`` and ``SECRET_KEY`` on every request (an app may change
    them, Flask's own tests do), so :meth:`for_config` does too: a dozen dict lookups and a
    cache hit on the tuple they make.
    """

    def __init__(self, options: Options, build: Callable[[SessionConfig], M]) -> None:
        self._options = options
        self._build = build
        self._managers: dict[tuple[Any, ...], M] = {}

    def for_config(self, config: Mapping[str, Any]) -> M | None:
        """The manager for ``app.config`` as it is now; None without a ``SECRET_KEY`` (Flask
        then gives the request its NullSession)."""
        secret = config.get("SECRET_KEY")
        if not secret:
            return None
        fallbacks = config.get("SECRET_KEY_FALLBACKS")
        key = (
            secret,
            tuple(fallbacks) if fallbacks else (),
            config.get("SESSION_COOKIE_NAME", "session"),
            config.get("SESSION_COOKIE_DOMAIN"),
            config.get("SESSION_COOKIE_PATH") or config.get("APPLICATION_ROOT") or "/",
            config.get("SESSION_COOKIE_HTTPONLY", True),
            config.get("SESSION_COOKIE_SECURE", False),
            config.get("SESSION_COOKIE_SAMESITE"),
            config.get("SESSION_COOKIE_PARTITIONED", False),
        )
        manager = self._managers.get(key)
        if manager is None:
            manager = self._build(self._config(key))
            if len(self._managers) >= _MAX_MANAGERS:
                del self._managers[next(iter(self._managers))]
            self._managers[key] = manager
        return manager

    def _config(self, key: tuple[Any, ...]) -> SessionConfig:
        secret, fallbacks, name, domain, path, httponly, secure, samesite, partitioned = key
        cookie = CookieConfig(
            name=name,
            path=path,
            # Werkzeug drops a leading dot as browsers do (RFC 6265 section 5.2.3); its test
            # client matches no domain that keeps one.
            domain=domain.removeprefix(".") if domain else None,
            secure=bool(secure),
            httponly=bool(httponly),
            samesite=_samesite(samesite),
            partitioned=bool(partitioned),
            cache_control=self._options.cache_control,
        )
        return SessionConfig(
            secret_keys=tuple(_derive(k) for k in (secret, *fallbacks)),
            sign_cookie=True,
            cookie=cookie,
            **self._options.fields,
        )


def permanent_lifetime(config: Mapping[str, Any], absolute: float | None) -> dict[str, Any]:
    """The ``set_lifetime`` keywords of a permanent session: ``PERMANENT_SESSION_LIFETIME`` as
    idle timeout and cookie max age (browsers keep a cookie 400 days at most)."""
    key = "PERMANENT_SESSION_LIFETIME"
    seconds = _seconds(config.get(key, timedelta(days=31)), key)
    if seconds is None or seconds < 0:
        raise ConfigurationError(f"{key} must be a duration of zero or more")
    return {
        "idle_timeout": seconds,
        "absolute_timeout": absolute,
        "cookie_max_age": min(int(seconds), MAX_COOKIE_AGE),
    }


def session_mode(mode: RequestMode) -> Callable[[F], F]:
    """Run a view's requests in concurrency ``mode``: ``"lock"``, ``"merge"``, ``"none"``, or
    ``"read-only"`` (no lock, nothing written, not even a touch).

    ::

        @app.post("/checkout")
        @session_mode("lock")
        def checkout(): ...
    """
    if mode != "read-only" and mode not in MODES:
        raise ConfigurationError(
            f"session_mode({mode!r}): expected {', '.join(sorted(MODES))} or read-only"
        )

    def mark(view: F) -> F:
        setattr(view, MODE_ATTRIBUTE, mode)
        return view

    return mark


class RouteModes:
    """The modes views asked for with :func:`session_mode`, by endpoint.

    Rebuilt whenever the app's view count changes (views are registered before the first
    request), so a request to an app that marks no view costs one ``len()``.
    """

    def __init__(self) -> None:
        self._count = -1
        self._modes: dict[str, RequestMode] = {}

    def of(self, view_functions: Mapping[str, Callable[..., Any]]) -> Mapping[str, RequestMode]:
        """The endpoint -> mode table of ``app.view_functions``."""
        if len(view_functions) != self._count:
            self._modes = {
                endpoint: getattr(view, MODE_ATTRIBUTE)
                for endpoint, view in list(view_functions.items())
                if getattr(view, MODE_ATTRIBUTE, None) is not None
            }
            self._count = len(view_functions)
        return self._modes


def startup_warning(config: Mapping[str, Any]) -> str | None:
    """The one warning ``init_app`` logs about Flask defaults weaker than coatcheck's, or None."""
    problems = []
    if not config.get("SESSION_COOKIE_SECURE", False):
        problems.append(
            "SESSION_COOKIE_SECURE is False (Flask's default), so the session cookie also "
            "travels over plain HTTP, where anyone on the path can take the session; set "
            "SESSION_COOKIE_SECURE = True when the app is served over HTTPS"
        )
    secret = config.get("SECRET_KEY")
    if not secret:
        problems.append("SECRET_KEY is not set, so sessions are unavailable (Flask's NullSession)")
    elif len(_key_bytes(secret)) < 32:
        problems.append(
            f"SECRET_KEY is {len(_key_bytes(secret))} bytes long; signing the session cookie "
            "wants 32 random bytes or more "
            "(python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    if not problems:
        return None
    return "coatcheck: " + "; ".join(problems) + " (see docs/flask.md, Defaults)"
