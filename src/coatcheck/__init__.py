"""coatcheck: server-side HTTP sessions for Python.

The browser holds a ticket (the session id cookie); coatcheck keeps the state behind it in a
store and hands it back, safely and fast, on every later request. Public names only live here.
"""

from __future__ import annotations

from ._async.manager import AsyncSessionManager
from ._sansio.config import ConcurrencyMode, SessionConfig
from ._sansio.cookies import CookieConfig
from ._sansio.headers import SaveOutcome
from ._sansio.namespaces import Namespace, Reservation
from ._sansio.serializers import JSONSerializer, MsgpackSerializer, PickleSerializer, Serializer
from ._sansio.session import Session
from ._sync.manager import SessionManager
from .errors import (
    CoatcheckError,
    ConcurrencyError,
    ConfigurationError,
    InvalidKey,
    PayloadTooLarge,
    ReservedNamespace,
    SerializationError,
    SessionConflict,
    SessionDestroyed,
    SessionError,
    SessionInterrupted,
    SessionLocked,
    StoreError,
    StoreIncompatible,
    StoreUnavailable,
)

__all__ = [
    "AsyncSessionManager",
    "CoatcheckError",
    "ConcurrencyError",
    "ConcurrencyMode",
    "ConfigurationError",
    "CookieConfig",
    "InvalidKey",
    "JSONSerializer",
    "MsgpackSerializer",
    "Namespace",
    "PayloadTooLarge",
    "PickleSerializer",
    "Reservation",
    "ReservedNamespace",
    "SaveOutcome",
    "SerializationError",
    "Serializer",
    "Session",
    "SessionConfig",
    "SessionConflict",
    "SessionDestroyed",
    "SessionError",
    "SessionInterrupted",
    "SessionLocked",
    "SessionManager",
    "StoreError",
    "StoreIncompatible",
    "StoreUnavailable",
]

__version__ = "0.1.0"
