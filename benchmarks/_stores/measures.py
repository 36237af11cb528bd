"""The five measured operations, timed and counted once for both flavours.

Each operation is a :class:`Step` on each side: ``prepare`` makes, before the clock starts, what
the timed call is given (the store an operation object, the raw floor its key), and ``call``
(with ``then``, a second call given the first's answer) is what is timed. Update and touch
follow an untimed load of the record and pass its version and handle on, as the session core
does (memcached's cas token rides in the handle: one ``cas`` instead of ``gets`` + ``cas``).
:func:`run` and :func:`profile` are coroutines that run in either flavour (:mod:`_flavours`).
"""

from __future__ import annotations

import cProfile
import gc
import io
import pstats
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _flavours import Flavour

from coatcheck.stores import LOCKED, Create, Load, LockRequest, Record, Touch, Update

from .benches import Bench, open_bench
from .workload import EXPIRES, LOCK, NOW, PAYLOAD, new_keys

__all__ = ["PHASES", "Row", "Settings", "profile", "run"]

# The order the phases run in: creates make the records the later phases work on.
PHASES = ("create", "load", "update", "touch", "lock cycle")
REPORT_ORDER = ("load", "create", "update", "touch", "lock cycle")
EXPECTED_VERSION = {"create": 1, "load": 1, "update": 2, "touch": 2, "lock cycle": 3}
MIN_SAMPLES = 50  # a phase's budget never cuts it below this
# Uncounted operations before the round-trip pass counts: pools open, Redis loads its scripts,
# and psycopg prepares each statement on each pooled connection after its fifth run (a Parse
# round trip of its own, once per statement and connection).
PROBE_WARMUP = 16


@dataclass(frozen=True)
class Settings:
    iterations: int  # timed pairs per phase, at most
    budget: float  # seconds per phase, at most (after the warm-up)
    warmup: int  # untimed pairs first
    probe_reps: int  # operations per phase in the round-trip pass


async def _as_is(k: Any) -> Any:
    return k


@dataclass(frozen=True)
class Step:
    """One side of one operation: ``prepare`` untimed, then ``call`` (and ``then``) timed."""

    call: Callable[[Any], Any]
    then: Callable[[Any, Any], Any] | None = None
    prepare: Callable[[Any], Awaitable[Any]] = _as_is

    def timed_call(self, flavour: Flavour) -> Callable[[Any], Any]:
        """What the clock runs on one prepared argument."""
        return self.call if self.then is None else flavour.chain(self.call, self.then)


def store_steps(store: Any, flavour: Flavour) -> dict[str, Step]:
    """The operations on ``store``; each key goes through each phase once."""

    async def create(k: str) -> Create:
        return Create(k, PAYLOAD, NOW, EXPIRES, NOW)

    async def load(k: str) -> Load:
        return Load(k, NOW)

    async def loaded(k: str) -> Record:
        record: Record = await flavour.call(store.load, Load(k, NOW))
        return record

    async def update(k: str) -> Update:
        record = await loaded(k)
        return Update(k, PAYLOAD, NOW, EXPIRES, NOW, record.version, None, record.handle)

    async def touch(k: str) -> Touch:
        return Touch(k, NOW, EXPIRES, NOW, None, (await loaded(k)).handle)

    async def lock(k: str) -> Load:
        return Load(k, NOW, LOCK)

    def unlocking_update(op: Load, record: Record) -> Any:
        return store.update(
            Update(op.key, PAYLOAD, NOW, EXPIRES, NOW, record.version, LOCK.token, record.handle)
        )

    return {
        "create": Step(store.create, prepare=create),
        "load": Step(store.load, prepare=load),
        "update": Step(store.update, prepare=update),
        "touch": Step(store.touch, prepare=touch),
        "lock cycle": Step(store.load, unlocking_update, lock),
    }


def raw_steps(raw: Any, flavour: Flavour) -> dict[str, Step]:
    """The raw floor's: the same on its driver, update and touch after an untimed load too.

    Its lock cycle is a load and an update, so it reads where any lock must write: read it as
    a bound, not as a floor a lock could reach.
    """

    async def loaded(k: Any) -> Any:
        await flavour.call(raw.load, k)
        return k

    return {
        "create": Step(raw.create),
        "load": Step(raw.load),
        "update": Step(raw.update, prepare=loaded),
        "touch": Step(raw.touch, prepare=loaded),
        "lock cycle": Step(raw.load, lambda k, _: raw.update(k)),
    }


def check_result(name: str, phase: str, result: Any) -> None:
    """The round-trip pass checks that the store took its success path in every phase."""
    expected_version = EXPECTED_VERSION[phase]
    ok = {
        "create": result is True,
        "load": isinstance(result, Record) and result.payload == PAYLOAD,
        "update": result == expected_version,
        "touch": result is True,
        "lock cycle": result == expected_version,
    }[phase]
    if not ok:
        raise RuntimeError(f"{name} {phase}: unexpected result {result!r}: not a success path")


# -- timing --------------------------------------------------------------------------------------


@dataclass
class Phase:
    """Per-operation samples (µs) of the store and its raw floor in one phase."""

    store: list[float] = field(default_factory=list)
    raw: list[float] = field(default_factory=list)
    used: int = 0  # keys gone through this phase (warm-up included)


async def time_phase(
    flavour: Flavour,
    steps: tuple[Step, Step],
    keys: tuple[list[str], list[Any]],
    batch: int,
    settings: Settings,
) -> Phase:
    """Store and raw timings over their keys (each used once), ``batch`` calls a sample.

    Store and raw calls alternate (which goes first flips every sample), so a burst of load
    from elsewhere on this shared machine hits both alike; the phase stops after its iteration
    count or time budget, after a warm-up.
    """
    timed = [step.timed_call(flavour) for step in steps]
    phase = Phase()
    gc.collect()
    deadline = float("inf")
    for g in range(len(keys[0]) // batch):
        if g == settings.warmup:
            deadline = time.perf_counter() + settings.budget
        xs = [
            [await step.prepare(k) for k in ks[g * batch : (g + 1) * batch]]
            for step, ks in zip(steps, keys, strict=True)
        ]
        ns = [0, 0]
        for side in (0, 1) if g % 2 else (1, 0):  # the store first on odd samples
            ns[side] = await flavour.timed(timed[side], xs[side])
        phase.used = (g + 1) * batch
        if g >= settings.warmup:
            phase.store.append(ns[0] / batch / 1000)
            phase.raw.append(ns[1] / batch / 1000)
            if len(phase.store) >= MIN_SAMPLES and time.perf_counter() > deadline:
                break
    return phase


# -- counting ------------------------------------------------------------------------------------


@dataclass
class Probe:
    """What the round-trip pass saw for one operation."""

    store_trips: list[int] = field(default_factory=list)
    raw_trips: list[int] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)

    def trips(self) -> str:
        def show(counts: list[int]) -> str:
            low, high = min(counts), max(counts)
            return str(low) if low == high else f"{low}-{high}"

        return f"{show(self.store_trips)}/{show(self.raw_trips)}"


async def probe(flavour: Flavour, bench: Bench, reps: int) -> dict[str, Probe]:
    """Count each operation's round trips on the relayed store and floor; check success paths."""
    steps, raw = store_steps(bench.probe, flavour), raw_steps(bench.probe_raw, flavour)
    keys = new_keys(reps + PROBE_WARMUP)
    raw_keys = [bench.probe_raw.key(k) for k in new_keys(reps + PROBE_WARMUP)]

    async def counted(step: Step, k: Any) -> tuple[Any, list[str]]:
        x = await step.prepare(k)
        mark = bench.counter.mark()
        out = await flavour.call(step.timed_call(flavour), x)
        return out, bench.counter.since(mark)

    result: dict[str, Probe] = {}
    with bench.probe_context():
        for phase in PHASES:
            seen = result[phase] = Probe()
            for i, (k, r) in enumerate(zip(keys, raw_keys, strict=True)):
                out, store_turns = await counted(steps[phase], k)
                check_result(bench.name, phase, out)
                _, raw_turns = await counted(raw[phase], r)
                if i >= PROBE_WARMUP:
                    seen.store_trips.append(len(store_turns))
                    seen.raw_trips.append(len(raw_turns))
                    seen.sent = store_turns
        someone_else = Load(keys[0], NOW, LockRequest("someone-else", 30.0))
        if await flavour.call(bench.probe.load, someone_else) is LOCKED:
            raise RuntimeError(f"{bench.name}: the lock cycle left the lock held")
    return result


# -- results -------------------------------------------------------------------------------------


@dataclass
class Row:
    store: str
    op: str
    store_us: float
    raw_us: float
    samples: int
    spread: float = 0.0  # half the gap between the ratios of the phase's two halves
    trips: str = "-"  # store/raw
    sent: str = ""
    extra_trips: bool = False

    @property
    def ratio(self) -> float:
        return self.store_us / self.raw_us


def _compress(labels: list[str]) -> str:
    """``['gets', 'cas']`` -> ``gets, cas``; repeats as ``fsync x2``."""
    out: list[str] = []
    for label in labels:
        if out and out[-1].split(" x")[0] == label:
            head, _, n = out[-1].partition(" x")
            out[-1] = f"{head} x{int(n or 1) + 1}"
        else:
            out.append(label)
    return ", ".join(out)


def rows_for(bench: Bench, phases: dict[str, Phase], probes: dict[str, Probe]) -> list[Row]:
    rows = []
    for op in REPORT_ORDER:
        phase, seen = phases[op], probes[op]
        half = len(phase.store) // 2
        first = statistics.median(phase.store[:half]) / statistics.median(phase.raw[:half])
        second = statistics.median(phase.store[half:]) / statistics.median(phase.raw[half:])
        row = Row(
            bench.name,
            op,
            statistics.median(phase.store),
            statistics.median(phase.raw),
            len(phase.store),
            abs(first - second) / 2,
        )
        if bench.counter.unit:
            row.trips = seen.trips()
            row.sent = _compress(seen.sent)
            row.extra_trips = max(seen.store_trips) > max(seen.raw_trips)
        rows.append(row)
    return rows


async def run(flavour: Flavour, name: str, tmp: Path, settings: Settings) -> list[Row]:
    """One store in one flavour: the round-trip pass, then each phase timed."""
    async with open_bench(name, tmp, flavour) as bench:
        probes = await probe(flavour, bench, settings.probe_reps)
        n = (settings.warmup + settings.iterations) * bench.batch
        keys = new_keys(n)
        raw_keys = [bench.raw.key(k) for k in new_keys(n)]
        steps, raw = store_steps(bench.store, flavour), raw_steps(bench.raw, flavour)
        phases: dict[str, Phase] = {}
        order = list(range(n))
        for op in PHASES:
            phase = await time_phase(
                flavour, (steps[op], raw[op]), (keys, raw_keys), bench.batch, settings
            )
            phases[op] = phase
            if op == "create":
                # Later phases work on the records this one made, in another order.
                random.Random(7).shuffle(order)
                order = [i for i in order if i < phase.used]
                keys = [keys[i] for i in order]
                raw_keys = [raw_keys[i] for i in order]
            if op in ("update", "lock cycle"):
                loaded = await flavour.call(bench.store.load, Load(keys[0], NOW))
                if not isinstance(loaded, Record) or loaded.version != EXPECTED_VERSION[op]:
                    raise RuntimeError(
                        f"{name}: expected version {EXPECTED_VERSION[op]} after {op}, "
                        f"got {loaded!r}"
                    )
        return rows_for(bench, phases, probes)


# -- profiling -----------------------------------------------------------------------------------


async def profile(flavour: Flavour, name: str, tmp: Path, reps: int) -> str:
    """cProfile of each store operation next to its raw floor: where the extra time goes.

    cProfile inflates call-heavy code, so compare the two sides' lists and shares, not their
    totals with the table's.
    """
    out = io.StringIO()
    async with open_bench(name, tmp, flavour) as bench:
        keys = new_keys(reps)
        raw_keys = [bench.raw.key(k) for k in new_keys(reps)]
        steps, raw = store_steps(bench.store, flavour), raw_steps(bench.raw, flavour)
        for op in PHASES:
            for side, step, ks in (("store", steps[op], keys), ("raw", raw[op], raw_keys)):
                xs = [await step.prepare(k) for k in ks]
                profiler = cProfile.Profile()
                profiler.enable()
                await flavour.timed(step.timed_call(flavour), xs)
                profiler.disable()
                out.write(_report(f"{name} {flavour.name} {op}, {side}", profiler, reps))
    return out.getvalue()


def _report(title: str, profiler: cProfile.Profile, reps: int) -> str:
    stats = pstats.Stats(profiler)
    total = stats.total_tt  # type: ignore[attr-defined]
    lines = [f"\n{title}: {total / reps * 1e6:.1f} µs/op under cProfile"]
    rows = sorted(stats.stats.items(), key=lambda item: -item[1][2])  # type: ignore[attr-defined]
    for (filename, line, func), (_, ncalls, tottime, _, _) in rows[:12]:
        where = filename.split("site-packages/")[-1].split("src/")[-1]
        each = f"{tottime / reps * 1e6:7.2f} µs {ncalls / reps:5.1f}x"
        lines.append(f"  {each}  {func}  {where}:{line}")
    return "\n".join(lines) + "\n"
