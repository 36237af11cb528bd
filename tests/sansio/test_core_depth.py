"""The nesting limit through the core: what a save accepts, a later open loads, whatever the call
stack depth of either; a value nested deeper is refused at save, naming its key, and a stored
payload nested deeper is corrupt (a fresh session, logged), as any other corrupt payload."""

from __future__ import annotations

from typing import Any

import pytest

from coatcheck._sansio.core import SessionCore
from coatcheck._sansio.document import FORMAT_VERSION
from coatcheck._sansio.ids import new_session_id, storage_key
from coatcheck._sansio.ops import Create, Delete, Load, Record
from coatcheck._sansio.serializers import JSONSerializer, MsgpackSerializer
from coatcheck._sansio.session import Session
from coatcheck.errors import SerializationError
from coatcheck.testing import FrozenClock

from .nesting import MAX_DEPTH, encoded, nested, tree, within_frames
from .scripted import ScriptedStore, run
from .serializer_values import assert_same
from .support import NOW, make_core, reasons

#: How deep a value may nest below the document: the document and its namespace count too
#: (the document, "n" and the name for a namespace other than the default).
DEFAULT_ROOM = MAX_DEPTH - 2
NAMESPACE_ROOM = MAX_DEPTH - 3


@pytest.fixture(params=["json", "msgpack"])
def name(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


def core_for(clock: FrozenClock, name: str) -> SessionCore:
    return make_core(clock, serializer=JSONSerializer() if name == "json" else MsgpackSerializer())


def save_new(core: SessionCore, session: Session) -> bytes:
    """Save a new session through the save flow; the payload it created."""
    store = ScriptedStore((Create, True))
    store.run(core.save_flow(session))
    (create,) = store.seen
    assert isinstance(create, Create)
    return create.payload


def open_payload(core: SessionCore, payload: bytes, *steps: object) -> Session:
    """Open a stored session whose record holds ``payload``; ``steps`` follow its Load."""
    session_id = new_session_id(core.config.id_bytes)
    key = storage_key(session_id)
    record = Record(payload, 1, NOW, core.lifetime.deadline(NOW, NOW), "handle")
    resolved = [Delete(key) if step is Delete else step for step in steps]
    return run(core.open_flow(session_id), (Load(key, NOW), record), *resolved)


def stored_payload(name: str, default: Any = None, namespaces: Any = None) -> bytes:
    """A payload written by hand, as the codec would write it for these (tagged) trees."""
    document: dict[str, Any] = {"c": int(NOW * 1000)}
    if default is not None:
        document[""] = default
    if namespaces is not None:
        document["n"] = namespaces
    return f"cc{FORMAT_VERSION}:{name}:".encode() + encoded(name, document)


@pytest.mark.parametrize(("save_frames", "load_frames"), [(0, 0), (0, 500), (500, 0)])
def test_what_a_save_accepts_loads_back_at_any_stack_depth(
    clock: FrozenClock, name: str, save_frames: int, load_frames: int
) -> None:
    core = core_for(clock, name)
    session = run(core.open_flow(None))
    session["k"] = nested("mixed", DEFAULT_ROOM)
    session["t"] = nested("tuple", DEFAULT_ROOM)
    session.namespace("app")["k"] = nested("escaped", NAMESPACE_ROOM)
    payload = within_frames(save_frames, lambda: save_new(core, session))
    opened = within_frames(load_frames, lambda: open_payload(core, payload))
    assert not opened.is_new
    assert_same(nested("mixed", DEFAULT_ROOM), opened["k"])
    assert_same(nested("tuple", DEFAULT_ROOM), opened["t"])
    assert_same(nested("escaped", NAMESPACE_ROOM), opened.namespace("app")["k"])


@pytest.mark.parametrize("frames", [0, 500])
@pytest.mark.parametrize(
    ("namespace", "room", "label"),
    [("", DEFAULT_ROOM, "cart"), ("app", NAMESPACE_ROOM, "app/cart")],
)
def test_one_level_more_is_refused_at_save_naming_the_key(
    clock: FrozenClock, name: str, frames: int, namespace: str, room: int, label: str
) -> None:
    core = core_for(clock, name)
    session = run(core.open_flow(None))
    session["fine"] = nested("list", DEFAULT_ROOM)
    target = session.namespace(namespace) if namespace else session
    target["cart"] = nested("list", room + 1)
    with pytest.raises(SerializationError, match=f"more than {MAX_DEPTH} deep") as raised:
        within_frames(frames, lambda: ScriptedStore().run(core.save_flow(session)))  # no write
    assert raised.value.key == label


@pytest.mark.parametrize("frames", [0, 500])
@pytest.mark.parametrize(
    ("default", "namespaces"),
    [
        ({"k": tree("list", DEFAULT_ROOM + 1)}, None),
        ({"k": tree("tuple", DEFAULT_ROOM + 1)}, None),
        (None, {"app": {"k": tree("mixed", NAMESPACE_ROOM + 1)}}),
    ],
)
def test_a_stored_payload_one_level_too_deep_is_corrupt(
    clock: FrozenClock,
    caplog: pytest.LogCaptureFixture,
    name: str,
    frames: int,
    default: Any,
    namespaces: Any,
) -> None:
    core = core_for(clock, name)
    payload = stored_payload(name, default, namespaces)
    session = within_frames(frames, lambda: open_payload(core, payload, Delete))
    assert session.is_new and session.had_ticket and session.key is None
    assert reasons(caplog) == ["corrupt-payload"]


@pytest.mark.parametrize("frames", [0, 500])
def test_a_stored_payload_at_the_limit_loads(clock: FrozenClock, name: str, frames: int) -> None:
    core = core_for(clock, name)
    payload = stored_payload(
        name, {"k": tree("list", DEFAULT_ROOM)}, {"app": {"k": tree("tuple", NAMESPACE_ROOM)}}
    )
    session = within_frames(frames, lambda: open_payload(core, payload))
    assert session["k"] == nested("list", DEFAULT_ROOM)
    assert session.namespace("app")["k"] == nested("tuple", NAMESPACE_ROOM)
