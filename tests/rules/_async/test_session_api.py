"""The session API through the manager: keys, namespaces, form tokens, flash messages (sync
twin generated)."""

from __future__ import annotations

import pytest

from coatcheck import AsyncSessionManager, InvalidKey, ReservedNamespace

# -- the session API ------------------------------------------------------------------------


@pytest.mark.asyncio
async def test_non_string_keys_are_refused(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    with pytest.raises(InvalidKey):
        session[1] = "x"  # type: ignore[index]
    with pytest.raises(InvalidKey):
        session.setdefault(2, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidKey):
        session.update({3: "x"})
    # Reads of other keys just miss, as on a dict (nothing could be stored under them).
    assert session.get(None) is None  # type: ignore[arg-type]
    assert 1 not in session
    with pytest.raises(KeyError):
        session[1]  # type: ignore[index]
    assert dict(session) == {}


@pytest.mark.asyncio
async def test_namespaces_and_reservations(manager: AsyncSessionManager) -> None:
    auth = manager.reserve("auth")
    session = await manager.open(None)
    session.namespace("shop")["cart"] = [1]
    session.namespace("auth", auth)["since"] = 5
    with pytest.raises(ReservedNamespace):
        session.namespace("auth")["since"] = 0
    assert session.namespace("auth")["since"] == 5
    session["cart"] = "default namespace"
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    again = await manager.open(outcome.ticket)
    assert again.namespace("shop")["cart"] == [1]
    assert dict(again.namespace("auth")) == {"since": 5}
    assert again["cart"] == "default namespace"
    manager.release("auth")
    again.namespace("auth")["since"] = 6
    assert again.namespace("auth")["since"] == 6


@pytest.mark.asyncio
async def test_form_tokens_are_single_use_and_bounded(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    tokens = [session.create_form_token() for _ in range(17)]
    assert not session.has_form_token(tokens[0])  # the oldest was dropped
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    again = await manager.open(outcome.ticket)
    assert again.has_form_token(tokens[5])
    assert again.consume_form_token(tokens[5]) is True
    assert again.consume_form_token(tokens[5]) is False
    assert again.consume_form_token(123) is False
    await manager.save(again)
    third = await manager.open(outcome.ticket)
    assert not third.has_form_token(tokens[5]) and third.has_form_token(tokens[16])


@pytest.mark.asyncio
async def test_flash_messages_show_once(manager: AsyncSessionManager) -> None:
    session = await manager.open(None)
    session.flash("saved")
    session.flash("careful", "warning")
    outcome = await manager.save(session)
    assert outcome.ticket is not None
    nxt = await manager.open(outcome.ticket)
    assert nxt.pop_flashed("warning") == [("warning", "careful")]
    assert nxt.pop_flashed() == [("message", "saved")]
    await manager.save(nxt)
    assert (await manager.open(outcome.ticket)).pop_flashed() == []
