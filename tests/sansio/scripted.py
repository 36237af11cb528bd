"""A scripted fake store: runs a session flow against a list of expected steps, with no I/O.

::

    store = ScriptedStore(
        (Load(KEY, NOW), record),                   # this exact operation, answered `record`
        Step(Update, 2),                            # any Update, answered 2
        where(Unlock, key=KEY),                     # an Unlock of KEY, answered None
        Step(Delete, error=StoreError("s", "down")),  # thrown into the flow, as a driver does
    )
    session = store.run(core.open_flow(ticket))

Each operation the flow yields must match the next step's expectation: an exact operation
(compared with ``==`` *and* by type, since operations are named tuples and ``Sleep(1.0) ==
ClearExpired(1.0)`` as tuples), an operation type, or a predicate (:func:`where` builds one that
reads well in failure messages). The step's ``answer`` is sent back into the flow, or its
``error`` is thrown into it with ``flow.throw``, exactly as ``coatcheck._async.driver`` does with
a StoreError. Sleep is answered like any other step: nothing ever waits.

The test fails with :class:`ScriptMismatch` when the flow yields an operation the script did not
expect, or finishes (returns or raises) with steps left over. Every operation the flow yielded is
kept in :attr:`ScriptedStore.seen`, to look inside fields the script left free (payloads, tokens).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any, NamedTuple, TypeVar, Union, get_args

from coatcheck._sansio.ops import Flow, Operation

__all__ = ["ScriptMismatch", "ScriptedStore", "Step", "run", "where"]

T = TypeVar("T")

OPERATIONS: tuple[type, ...] = get_args(Operation)

#: What a step accepts: an exact operation, an operation type, or a predicate on the operation.
Expectation = Union[Operation, type, Callable[[Any], bool]]  # noqa: UP007 - a runtime alias


class ScriptMismatch(AssertionError):
    """The flow and the script disagree (pytest reports it as a failed assertion)."""


class Where:
    """A predicate: the operation is a ``kind`` whose named fields equal the given values."""

    def __init__(self, kind: type, fields: dict[str, object]) -> None:
        unknown = set(fields) - set(getattr(kind, "_fields", ()))
        if kind not in OPERATIONS or unknown:
            raise TypeError(f"where({kind.__name__}, ...): no such operation fields {unknown}")
        self.kind = kind
        self.fields = fields

    def __call__(self, op: object) -> bool:
        return isinstance(op, self.kind) and all(
            getattr(op, name) == value for name, value in self.fields.items()
        )

    def __repr__(self) -> str:
        shown = ", ".join(f"{name}={value!r}" for name, value in self.fields.items())
        return f"{self.kind.__name__}({shown}{', ...' if shown else '...'})"


def where(kind: type, **fields: object) -> Where:
    """Expect a ``kind`` operation with these field values; the other fields are free."""
    return Where(kind, fields)


class Step(NamedTuple):
    """One expected operation and what the store does about it.

    ``then`` runs once the operation matched, before the answer goes back (to move a clock
    between two operations, say).
    """

    expect: Expectation
    answer: object = None
    error: BaseException | None = None
    then: Callable[[], object] | None = None


def _step(item: object) -> Step:
    # A plain 2-tuple is (expectation, answer); operations are named tuples, never plain ones.
    if isinstance(item, Step):
        return item
    if type(item) is tuple and len(item) == 2:
        return Step(item[0], item[1])
    return Step(item)  # type: ignore[arg-type]  # a bare expectation, answered None


def _matches(expect: Expectation, op: object) -> bool:
    if isinstance(expect, type):
        return isinstance(op, expect)
    if isinstance(expect, OPERATIONS):
        return type(op) is type(expect) and op == expect
    return bool(expect(op))


def _describe(expect: Expectation) -> str:
    if isinstance(expect, type):
        return f"any {expect.__name__}"
    if isinstance(expect, (Where, *OPERATIONS)):
        return repr(expect)
    return getattr(expect, "__name__", repr(expect))


class ScriptedStore:
    """Answers a flow's operations from a script; see the module docstring."""

    def __init__(self, *steps: object) -> None:
        self.steps = [_step(item) for item in steps]
        self.position = 0
        #: every operation the flows yielded, in order
        self.seen: list[Operation] = []

    def expect(self, *steps: object) -> ScriptedStore:
        """Append more steps (for the next flow run against this store); returns the store."""
        self.steps.extend(_step(item) for item in steps)
        return self

    def _answer(self, op: Operation) -> Step:
        self.seen.append(op)
        if self.position >= len(self.steps):
            raise ScriptMismatch(
                f"operation #{len(self.seen)}: the flow yielded {op!r} after the script ended"
            )
        step = self.steps[self.position]
        if not _matches(step.expect, op):
            raise ScriptMismatch(
                f"step {self.position + 1}: expected {_describe(step.expect)}, "
                f"but the flow yielded {op!r}"
            )
        self.position += 1
        return step

    def _left_over(self, ending: str) -> ScriptMismatch | None:
        left = self.steps[self.position :]
        if not left:
            return None
        expected = ", ".join(_describe(step.expect) for step in left)
        return ScriptMismatch(f"the flow {ending} with {len(left)} step(s) left: {expected}")

    def run(self, flow: Flow[T]) -> T:
        """Drive ``flow`` to its end through the script and return its result.

        An exception the flow raises propagates unchanged, once the script is used up.
        """
        try:
            op = flow.send(None)
            while True:
                step = self._answer(op)
                if step.then is not None:
                    step.then()
                error = step.error
                op = flow.send(step.answer) if error is None else flow.throw(error)
        except StopIteration as stop:
            mismatch = self._left_over("returned")
            if mismatch is not None:
                raise mismatch from None
            value: T = stop.value
            return value
        except ScriptMismatch:
            _abandon(flow)
            raise
        except BaseException as exc:
            mismatch = self._left_over(f"raised {exc!r}")
            if mismatch is not None:
                raise mismatch from exc
            raise


def _abandon(flow: Flow[Any]) -> None:
    # Close the flow now rather than at garbage collection, so a flow that yields while
    # closing cannot surface later in an unrelated test; the mismatch is the failure to show.
    with contextlib.suppress(RuntimeError):
        flow.close()


def run(flow: Flow[T], *steps: object) -> T:
    """Run ``flow`` against a fresh :class:`ScriptedStore` of ``steps`` and return its result."""
    return ScriptedStore(*steps).run(flow)
