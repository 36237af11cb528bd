"""What the WSGI and ASGI middleware add to a response, written once on (name, value) str pairs.

Both shells translate their protocol's headers to and from these pairs; every rule about
``Vary``, ``Cache-Control``, an id carried in a header instead of a cookie, and the 503 sent
when the store fails (and what is logged then) lives here, so the two middlewares cannot
disagree.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import Literal, NamedTuple

from ..errors import ConfigurationError, SessionLocked, StoreError, StoreUnavailable
from .config import MODES, ConcurrencyMode, is_mode
from .cookies import CookieConfig, delete_cookie_header

__all__ = [
    "OUTCOME_UNKNOWN_BODY",
    "OUTCOME_UNKNOWN_HEADERS",
    "UNAVAILABLE_BODY",
    "UNAVAILABLE_HEADERS",
    "ModeFor",
    "RequestMode",
    "SaveOutcome",
    "check_id_header",
    "check_values",
    "interrupted_outcome",
    "log_refusal",
    "log_release_failure",
    "merge_headers",
    "refusal",
    "request_mode",
    "response_headers",
]

#: What a route may ask for: one of the concurrency modes, or ``read-only`` (no lock, no write).
RequestMode = Literal[ConcurrencyMode, "read-only"]
#: The middleware's ``mode_for(method, path)`` hook: a mode for this request, or None for the
#: manager's own.
ModeFor = Callable[[str, str], "RequestMode | None"]


class SaveOutcome(NamedTuple):
    """What a save means for the response.

    ``headers`` are the ``(name, value)`` pairs to add (Set-Cookie, Vary, Cache-Control);
    ``ticket`` is the new value the client must present from now on (None: unchanged);
    ``cleared`` says the client should forget its ticket.
    """

    headers: list[tuple[str, str]]
    ticket: str | None = None
    cleared: bool = False


log = logging.getLogger("coatcheck")

# RFC 9110 field-name = token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# Header names the session headers must not collide with.
_RESERVED = frozenset({"cookie", "set-cookie", "vary", "cache-control", "content-length"})

#: The body of the 503 answered when the store failed before anything of the request was
#: written (or the session lock was held too long).
UNAVAILABLE_BODY = (
    b"Service Unavailable: the session store cannot be reached; nothing was saved. "
    b"Try again shortly.\n"
)
#: The body of the 503 answered when a write was sent and not confirmed (the store timed out
#: or the connection broke after sending it), or an earlier write of the save went through:
#: the server may have applied this request's changes, or may apply them when it resumes.
OUTCOME_UNKNOWN_BODY = (
    b"Service Unavailable: the session store did not confirm this request's changes; they "
    b"may have been saved, or be saved when the store recovers. Check before repeating it.\n"
)


def _unavailable_headers(body: bytes) -> tuple[tuple[str, str], ...]:
    # No Set-Cookie, so the client keeps the ticket it has, and no cache may keep the answer.
    return (
        ("Content-Type", "text/plain; charset=utf-8"),
        ("Content-Length", str(len(body))),
        ("Retry-After", "1"),
        ("Cache-Control", "no-store"),
    )


#: The whole header set of the 503 with :data:`UNAVAILABLE_BODY`.
UNAVAILABLE_HEADERS = _unavailable_headers(UNAVAILABLE_BODY)
#: The whole header set of the 503 with :data:`OUTCOME_UNKNOWN_BODY`.
OUTCOME_UNKNOWN_HEADERS = _unavailable_headers(OUTCOME_UNKNOWN_BODY)


def refusal(exc: StoreError | SessionLocked) -> tuple[tuple[tuple[str, str], ...], bytes]:
    """The headers and body of the 503 answered for ``exc``: "nothing was saved" only when
    that is known (:attr:`~coatcheck.errors.StoreError.outcome_unknown` is false)."""
    if isinstance(exc, StoreError) and exc.outcome_unknown:
        return OUTCOME_UNKNOWN_HEADERS, OUTCOME_UNKNOWN_BODY
    return UNAVAILABLE_HEADERS, UNAVAILABLE_BODY


def check_id_header(name: str | None) -> str | None:
    """Validate the ``id_header`` middleware option; returns it unchanged."""
    if name is None:
        return None
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ConfigurationError(f"id_header {name!r} is not an HTTP header name")
    if name.lower() in _RESERVED:
        raise ConfigurationError(f"id_header cannot be {name!r}: the middleware manages it")
    return name


def request_mode(mode: str | None) -> tuple[ConcurrencyMode | None, bool]:
    """``(concurrency, read_only)`` for the manager's ``open`` from a route's requested mode."""
    if mode is None:
        return None, False
    if mode == "read-only":
        return None, True
    if is_mode(mode):
        return mode, False
    expected = "/".join(sorted(MODES))
    raise ConfigurationError(f"mode_for returned {mode!r}; expected {expected} or read-only")


def interrupted_outcome(cookie: CookieConfig) -> SaveOutcome:
    """The outcome of a save that found its session destroyed by a concurrent request.

    The session is gone, so the client is told to forget its ticket, exactly as after
    ``session.destroy()``.
    """
    return SaveOutcome(
        [
            ("Set-Cookie", delete_cookie_header(cookie)),
            ("Cache-Control", cookie.cache_control),
            ("Vary", "Cookie"),
        ],
        None,
        cleared=True,
    )


def response_headers(outcome: SaveOutcome, id_header: str | None) -> list[tuple[str, str]]:
    """The headers a save asks for, in cookie mode or carrying the ticket in ``id_header``.

    In header mode a new ticket travels in ``id_header`` (empty when the client must forget
    it) instead of ``Set-Cookie``, and responses vary on that header instead of ``Cookie``.
    """
    if id_header is None:
        return outcome.headers
    headers: list[tuple[str, str]] = []
    if outcome.ticket is not None:
        headers.append((id_header, outcome.ticket))
    elif outcome.cleared:
        headers.append((id_header, ""))
    for name, value in outcome.headers:
        lowered = name.lower()
        if lowered == "set-cookie":
            continue
        if lowered == "vary":
            value = id_header
        headers.append((name, value))
    return headers


def merge_headers(
    app_headers: Iterable[tuple[str, str]], session_headers: Sequence[tuple[str, str]]
) -> list[tuple[str, str]]:
    """The application's headers with the session's merged in; a new list, inputs untouched.

    - ``Vary``: the session's field names are added to the application's ``Vary`` (once,
      compared case-insensitively; nothing is added to ``Vary: *``).
    - ``Cache-Control``: the application's own is kept when it already says ``no-store`` or an
      unqualified ``private``; otherwise the session's replaces it. (``private="Set-Cookie"``
      keeps the body cacheable by shared caches, so it is replaced.)
    - anything else (``Set-Cookie``, an id header) is appended.
    """
    headers = list(app_headers)
    if not session_headers:
        return headers
    check_values(session_headers)
    for name, _ in headers:
        # Only Vary (4 letters) and Cache-Control (13) merge; testing the length first spares
        # a lower() per header on the hot path.
        if len(name) in (4, 13) and name.lower() in ("vary", "cache-control"):
            break
    else:
        # The usual response: nothing to merge with, the session's headers go last.
        headers += session_headers
        return headers
    vary: list[int] = []
    cache_control: list[int] = []
    for index, (name, _) in enumerate(headers):
        lowered = name.lower()
        if lowered == "vary":
            vary.append(index)
        elif lowered == "cache-control":
            cache_control.append(index)
    removed = False
    for name, value in session_headers:
        lowered = name.lower()
        if lowered == "vary" and vary:
            _merge_vary(headers, vary, value)
        elif lowered == "cache-control" and cache_control:
            # Whole directives: a qualified private="..." does not equal "private".
            directives = {
                part.strip().lower() for i in cache_control for part in headers[i][1].split(",")
            }
            if "no-store" not in directives and "private" not in directives:
                removed = True
                headers.append((name, value))
        else:
            headers.append((name, value))
    if removed:
        drop = set(cache_control)
        headers = [header for i, header in enumerate(headers) if i not in drop]
    return headers


def check_values(headers: Iterable[tuple[str, str]]) -> None:
    """Raise ``ValueError`` if a header value holds a CR, LF or NUL.

    Response splitting: a CR or LF in a value would start a header (or body) of its own.
    """
    for name, value in headers:
        if "\r" in value or "\n" in value or "\0" in value:
            raise ValueError(f"refusing a {name} header value with a control character")


def _merge_vary(headers: list[tuple[str, str]], at: list[int], value: str) -> None:
    present = {token.strip().lower() for i in at for token in headers[i][1].split(",")}
    if "*" in present:
        return
    wanted = (token.strip() for token in value.split(","))
    missing = [token for token in wanted if token and token.lower() not in present]
    if missing:
        name, existing = headers[at[0]]
        kept = existing.strip()
        headers[at[0]] = (name, ", ".join([kept, *missing] if kept else missing))


def log_refusal(exc: StoreError | SessionLocked) -> None:
    """Say on the ``coatcheck`` logger why a request was answered with a 503, and whether
    its changes may have been saved (``outcome_unknown``, also a field of the record)."""
    if isinstance(exc, SessionLocked):
        log.warning("%s; answered 503, nothing was saved", exc)
        return
    unknown = exc.outcome_unknown
    outcome = (
        "the outcome is unknown: a write was not confirmed and may have been applied"
        if unknown
        else "nothing was saved"
    )
    extra = {"store": exc.store, "outcome_unknown": unknown}
    if isinstance(exc, StoreUnavailable):
        log.warning("%s; answered 503, %s", exc, outcome, extra=extra)
    else:
        log.error("%s; answered 503, %s", exc, outcome, extra=extra, exc_info=exc)


def log_release_failure(exc: StoreError) -> None:
    """Say that an unsaved session's lock could not be released (it expires by itself)."""
    log.warning(
        "%s; the session lock of an unsaved request expires by itself",
        exc,
        extra={"store": exc.store},
    )
