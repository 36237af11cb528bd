"""The scripted store itself: it must fail loudly whenever a flow and its script disagree."""

from __future__ import annotations

import pytest

from coatcheck._sansio.ops import Delete, Flow, Load, Sleep, Unlock
from coatcheck.errors import StoreError

from .scripted import ScriptedStore, ScriptMismatch, Step, run, where

KEY = "k" * 64


def load_then_delete() -> Flow[str]:
    record = yield Load(KEY, 1.0)
    yield Delete(KEY)
    return f"loaded {record!r}"


def cleaning_up() -> Flow[str]:
    try:
        yield Delete(KEY)
    except StoreError:
        yield Unlock(KEY, "token")
        raise
    return "done"


def test_answers_each_step_and_returns_the_result() -> None:
    store = ScriptedStore((Load(KEY, 1.0), None), Delete(KEY))
    assert store.run(load_then_delete()) == "loaded None"
    assert store.seen == [Load(KEY, 1.0), Delete(KEY)]


def test_types_and_predicates_are_expectations() -> None:
    assert run(load_then_delete(), (Load, "r"), lambda op: op.key == KEY) == "loaded 'r'"
    assert run(load_then_delete(), (where(Load, key=KEY), 1), where(Delete)) == "loaded 1"


def test_an_unexpected_operation_fails() -> None:
    with pytest.raises(ScriptMismatch, match=r"step 2: expected any Unlock, but .*Delete"):
        run(load_then_delete(), Load, Unlock)
    with pytest.raises(ScriptMismatch, match=r"step 1: expected Load\(key='x', \.\.\.\)"):
        run(load_then_delete(), where(Load, key="x"))


def test_exact_operations_compare_their_type_too() -> None:
    # As tuples, Sleep(1.0) == (1.0, None, None) == Delete(1.0); as expectations they must
    # not match.
    assert Sleep(1.0) == Delete(1.0)  # type: ignore[arg-type]

    def sleeping() -> Flow[None]:
        yield Sleep(1.0)

    with pytest.raises(ScriptMismatch):
        run(sleeping(), Delete(1.0))  # type: ignore[arg-type]


def test_an_operation_past_the_script_fails() -> None:
    with pytest.raises(ScriptMismatch, match=r"operation #2: .*Delete.* after the script ended"):
        run(load_then_delete(), Load)


def test_steps_left_over_fail_whether_the_flow_returns_or_raises() -> None:
    with pytest.raises(ScriptMismatch, match=r"returned with 1 step\(s\) left: any Sleep"):
        run(load_then_delete(), Load, Delete, Sleep)
    boom = StoreError("s", "down")
    with pytest.raises(ScriptMismatch, match=r"raised StoreError.* 1 step\(s\) left"):
        run(cleaning_up(), Step(Delete, error=boom), Unlock, Sleep)


def test_an_error_is_thrown_into_the_flow_which_may_clean_up() -> None:
    boom = StoreError("s", "down")
    store = ScriptedStore(Step(Delete(KEY), error=boom), Unlock(KEY, "token"))
    with pytest.raises(StoreError) as raised:
        store.run(cleaning_up())
    assert raised.value is boom
    assert store.seen == [Delete(KEY), Unlock(KEY, "token")]


def test_then_runs_before_the_answer_goes_back() -> None:
    calls: list[str] = []
    run(load_then_delete(), Step(Load, then=lambda: calls.append("moved")), Delete)
    assert calls == ["moved"]


def test_where_refuses_unknown_fields() -> None:
    with pytest.raises(TypeError, match="no such operation fields"):
        where(Load, kee=KEY)
