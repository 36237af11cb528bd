"""Django's session conventions in coatcheck's terms, free of I/O: what ``_session_expiry``
means as a coatcheck lifetime, which keys a session changed in place, and the errors Django's
callers expect."""

from __future__ import annotations

from collections.abc import Generator, Iterable
from datetime import datetime
from typing import Any

from django.contrib.sessions.exceptions import (  # type: ignore[import-untyped]
    SessionInterrupted as DjangoSessionInterrupted,
)

from ..._sansio.ops import Delete
from ..._sansio.session import Session

__all__ = ["apply_expiry", "changed_keys", "delete_flow", "interrupted_error", "lifetime_for"]

_NOT_GIVEN: Any = object()
#: Where SessionBase.set_expiry keeps its value, in the session data.
EXPIRY = "_session_expiry"


def delete_flow(key: str) -> Generator[Delete, object, None]:
    # One plain delete, run by the manager's driver so a failing store raises coatcheck's
    # StoreError as every other operation does.
    yield Delete(key)


def interrupted_error(kind: type[Exception]) -> Exception:
    """The error Django's callers expect when the record vanished: ``UpdateError`` from
    ``save()``, Django's ``SessionInterrupted`` (a 400) from ``cycle_key()``."""
    if kind is DjangoSessionInterrupted:
        # The message Django's middleware gives its own UpdateError.
        error: Exception = kind(
            "The request's session was deleted before the request completed. "
            "The user may have logged out in a concurrent request, for example."
        )
    else:
        error = kind()
    return error


def changed_keys(loaded: dict[str, Any], session: Session) -> Iterable[str]:
    """The keys whose values differ between the loaded data and the session now."""
    current = dict(dict.items(session))
    for key in loaded.keys() | current.keys():
        if loaded.get(key, _NOT_GIVEN) != current.get(key, _NOT_GIVEN):
            yield key


def lifetime_for(expiry: object, created_at: float) -> dict[str, Any] | None:
    """The ``set_lifetime`` keywords for Django's ``_session_expiry`` value, or None for the
    configured lifetime.

    Django's meaning: a number of seconds is an idle timeout; a date (stored as ISO text) a
    fixed end, whatever the activity; 0 or nothing the configured age (0 also ends the cookie
    with the browser, which is the middleware's to say).
    """
    if expiry is None or expiry == 0:
        return None
    if isinstance(expiry, (int, float)) and not isinstance(expiry, bool):
        return {"idle_timeout": max(0.0, float(expiry))}
    if isinstance(expiry, (str, datetime)):
        try:
            end = expiry if isinstance(expiry, datetime) else datetime.fromisoformat(expiry)
        except ValueError:
            return None  # not a date Django wrote: the configured lifetime applies
        # A naive datetime is local time, as Django's timezone.now() is without USE_TZ.
        return {"idle_timeout": None, "absolute_timeout": max(0.0, end.timestamp() - created_at)}
    return None


def apply_expiry(session: Session) -> None:
    """Give ``session`` the coatcheck lifetime its Django ``_session_expiry`` value means, so
    the store enforces it (only when that changes, which re-sends nothing by itself)."""
    wanted = lifetime_for(dict.get(session, EXPIRY), session.created_at)
    own = session.own_lifetime
    if wanted is None:
        if own:
            session.reset_lifetime()
    elif own != wanted:
        session.reset_lifetime()
        session.set_lifetime(**wanted)
