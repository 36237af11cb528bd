"""Builders shared by the SessionCore tests: a core on a frozen clock, stored records, logs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from coatcheck._sansio.config import SessionConfig
from coatcheck._sansio.core import SessionCore
from coatcheck._sansio.document import Document
from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck._sansio.ops import Load, Record
from coatcheck._sansio.session import Session
from coatcheck.testing import FrozenClock

from .scripted import ScriptedStore, where

NOW = 1_700_000_000.0
IDLE = 1800.0
ABSOLUTE = 12 * 3600.0
STORE = "scripted-store"


def make_core(
    clock: FrozenClock,
    *,
    monotonic: Callable[[], float] | None = None,
    slides_on_load: bool = False,
    **settings: Any,
) -> SessionCore:
    """A SessionCore on ``clock`` with the tests' timeouts unless ``settings`` say otherwise."""
    settings.setdefault("idle_timeout", IDLE)
    settings.setdefault("absolute_timeout", ABSOLUTE)
    return SessionCore(
        SessionConfig(**settings),
        clock=clock,
        store_name=STORE,
        monotonic=monotonic or FrozenClock(0.0),
        slides_on_load=slides_on_load,
    )


class Stored(NamedTuple):
    """A session as the store holds it: its id (the unsigned ticket), key and record."""

    session_id: str
    key: str
    record: Record


def document(
    core: SessionCore,
    data: dict[str, Any] | None = None,
    *,
    created: float = NOW,
    namespaces: dict[str, dict[str, Any]] | None = None,
    remote_addr: str | None = None,
    user_agent: str | None = None,
    **meta: Any,
) -> Document:
    """A document as ``core`` would have made it at ``created``, holding ``data``."""
    doc = core.fresh(created, remote_addr, user_agent).document
    doc.data[""].update(data or {})
    doc.data.update(namespaces or {})
    doc.meta.update(meta)
    return doc


def record(
    core: SessionCore,
    doc: Document,
    *,
    version: int = 1,
    accessed: float = NOW,
    expires: float | None = None,
    handle: object = "handle-1",
) -> Record:
    """The record a store answers for ``doc``; ``expires`` defaults to the core's deadline."""
    created = doc.meta["c"] / 1000
    if expires is None:
        expires = core.lifetime.deadline(created, accessed)
    return Record(core.codec.encode(doc), version, accessed, expires, handle)


def stored(core: SessionCore, data: dict[str, Any] | None = None, **options: Any) -> Stored:
    """A stored session holding ``data``; options go to :func:`document` or :func:`record`."""
    record_options = {
        name: options.pop(name)
        for name in ("version", "accessed", "expires", "handle")
        if name in options
    }
    session_id = new_session_id(core.config.id_bytes)
    rec = record(core, document(core, data, **options), **record_options)
    return Stored(session_id, storage_key(session_id), rec)


def contents(core: SessionCore, payload: bytes) -> tuple[dict[str, dict[str, Any]], dict[str, Any]]:
    """A payload's namespaces and metadata, to compare without caring for key order."""
    doc = core.codec.decode(payload)
    return doc.data, doc.meta


def open_stored(core: SessionCore, target: Stored, **options: Any) -> tuple[Session, ScriptedStore]:
    """Open ``target`` through a one-Load script (any lock or slide); the store is returned too."""
    store = ScriptedStore((where(Load, key=target.key), target.record))
    opened = store.run(core.open_flow(target.session_id, **options))
    assert opened.key == target.key, "the stored session was refused"
    return opened, store


def reasons(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The reason codes logged on ``coatcheck.security`` so far."""
    return [r.__dict__["reason"] for r in caplog.records if r.name == "coatcheck.security"]
