"""``SessionMiddleware``: Django's, plus what a server-side store needs at the end of a request.

Django's ``SessionMiddleware`` saves a session only when it was modified. With coatcheck a
session the request did not save may still hold something to give back: its lock in ``lock``
mode (which would otherwise stay held until ``lock_timeout``). This subclass settles such a
session after Django's ``process_response``, and answers 503 (as coatcheck's other
integrations do) when the store fails or the session lock is held too long, instead of a 500.
With Django's own middleware everything works except those two.
"""

from __future__ import annotations

from typing import Any

from django.contrib.sessions.middleware import (  # type: ignore[import-untyped]
    SessionMiddleware as DjangoSessionMiddleware,
)
from django.http import HttpResponse  # type: ignore[import-untyped]

from ..._sansio.headers import log_refusal, log_release_failure, refusal
from ...errors import SessionLocked, StoreError
from ._store import SessionStore

__all__ = ["SessionMiddleware"]


# Django has no type information: its classes are Any to mypy.
class SessionMiddleware(DjangoSessionMiddleware):  # type: ignore[misc]
    """``django.contrib.sessions.middleware.SessionMiddleware`` for coatcheck's engine."""

    def process_response(self, request: Any, response: Any) -> Any:
        try:
            response = super().process_response(request, response)
        except (StoreError, SessionLocked) as exc:
            _settle(request)
            return _refused(exc)
        _settle(request)
        return response

    def process_exception(self, request: Any, exception: Exception) -> Any:
        """A view that failed on the store (opening the session) gets a 503."""
        if isinstance(exception, (StoreError, SessionLocked)):
            return _refused(exception)
        return None


def _settle(request: Any) -> None:
    session = getattr(request, "session", None)
    if isinstance(session, SessionStore):
        try:
            session.settle()
        except StoreError as exc:
            log_release_failure(exc)  # the lock expires after its own timeout


def _refused(exc: StoreError | SessionLocked) -> Any:
    log_refusal(exc)
    headers, body = refusal(exc)
    response = HttpResponse(body, status=503)
    for name, value in headers:
        response.headers[name] = value
    return response
