"""What a save's outcome, or a refusal, does to a Werkzeug response: the Flask and Quart
integrations' response handling, written once (both hand the session interface a response with
Werkzeug ``Headers``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from werkzeug.datastructures import Headers

from .._sansio.cookies import cookie_values, set_cookie_header
from .._sansio.core import SessionCore
from .._sansio.headers import SaveOutcome, log_refusal, merge_headers, refusal
from .._sansio.session import Session
from ..errors import SessionLocked, StoreError

__all__ = ["apply_outcome", "refuse", "response_headers"]

# Header names merge_headers combines with the application's own (lowercased).
_MERGING = frozenset({"vary", "cache-control"})


def apply_outcome(headers: Headers, session_headers: Iterable[tuple[str, str]]) -> None:
    """Add a save's headers to a Werkzeug response's, with the middleware's rules
    (:func:`~coatcheck._sansio.headers.merge_headers`): one ``Vary`` holding the app's field
    names and ``Cookie``, the app's ``Cache-Control`` kept when it already says ``no-store`` or
    ``private``, ``Set-Cookie`` added."""
    extra = list(session_headers)
    if not extra:
        return
    own = [
        (name, value)
        for name, value in headers
        if len(name) in (4, 13) and name.lower() in _MERGING
    ]
    if not own:
        # The usual response: nothing to merge with (Headers.add refuses CR and LF too).
        for name, value in extra:
            headers.add(name, value)
        return
    merged = merge_headers(own, extra)
    for name in {name.lower() for name, _ in own}:
        del headers[name]
    for name, value in merged:
        headers.add(name, value)


def response_headers(
    outcome: SaveOutcome, session: Session, core: SessionCore, cookie_header: str | None
) -> list[Any]:
    """The headers a save asks for, with the cookie sent again when the request changed the
    session and the core did not re-send it (a browser-session cookie whose id stays).

    Flask sends the session cookie with every response whose request modified the session
    (its cookie session must; Flask-Session does the same), and Flask apps count on it: a
    changed ``SESSION_COOKIE_*`` setting reaches the browser with the next write.
    ``cookie_header`` is the request's ``Cookie`` header.
    """
    headers = outcome.headers
    if outcome.cleared or session.read_only or session.destroyed or not session.modified:
        return headers
    session_id = session.id
    if session_id is None or any(name == "Set-Cookie" for name, _ in headers):
        return headers
    cookie = core.config.cookie
    # The session kept its id and the core did not re-issue its ticket (it would for a stale
    # signature), so the ticket the client presented is the current one: sent back as it is,
    # it costs no signing.
    presented = cookie_values(cookie_header, cookie.name) if cookie_header else []
    ticket = presented[0] if presented else core.tickets.issue(session_id)
    resent = set_cookie_header(cookie, ticket)
    others = [header for header in headers if header[0] != "Cache-Control"]
    return [("Set-Cookie", resent), ("Cache-Control", cookie.cache_control), *others]


def refuse(exc: StoreError | SessionLocked) -> tuple[int, list[tuple[str, str]], bytes]:
    """Log why the request is refused, and the 503's status, headers and body."""
    log_refusal(exc)
    headers, body = refusal(exc)
    return 503, list(headers), body
