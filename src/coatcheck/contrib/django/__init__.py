"""Django integration: a session engine on coatcheck.

::

    # settings.py
    SESSION_ENGINE = "coatcheck.contrib.django"
    COATCHECK = {"STORE": "sqlite:///sessions.sqlite3"}      # or redis://, postgresql://, ...
    INSTALLED_APPS = [..., "coatcheck.contrib.django"]        # migrate creates the store's tables
    MIDDLEWARE = [..., "coatcheck.contrib.django.SessionMiddleware", ...]   # or Django's own

``request.session`` is a :class:`SessionStore`: Django's whole ``SessionBase`` API (sync and
async) on a server-side coatcheck session, with coatcheck's concurrency modes, rotation rule
(``cycle_key``: the old key is dead) and strict loading (an unknown key is never adopted).
Settings and their meaning: docs/django.md.
"""

from __future__ import annotations

from ._store import SessionStore
from .middleware import SessionMiddleware

__all__ = ["SessionMiddleware", "SessionStore"]
