"""The contract for records: create, load, update, touch, delete, cleanup, counts and handles."""

from __future__ import annotations

import pytest

from ...stores.base import (
    AsyncStore,
    ClearExpired,
    Create,
    Delete,
    Load,
    Record,
    Touch,
    Update,
)
from ._helpers import HOUR, NOW, close, key, put, times

__all__ = ["AsyncRecordContract"]


class AsyncRecordContract:
    """Records, versions and cleanup: part of the contract suite (``AsyncStoreContract``)."""

    @pytest.mark.asyncio
    async def test_load_of_missing_key_is_none(self, store: AsyncStore) -> None:
        assert await store.load(Load(key("missing"), NOW)) is None

    @pytest.mark.asyncio
    async def test_create_then_load_returns_version_1(self, store: AsyncStore) -> None:
        await put(store, key(1), b"hello")
        record = await store.load(Load(key(1), NOW))
        assert isinstance(record, Record)
        assert record.payload == b"hello"
        assert record.version == 1
        assert record.accessed_at == pytest.approx(NOW, abs=1e-3)
        assert record.expires_at == pytest.approx(NOW + HOUR, abs=1e-3)

    @pytest.mark.asyncio
    async def test_create_reports_collision_and_changes_nothing(self, store: AsyncStore) -> None:
        await put(store, key(1), b"first")
        assert (
            await store.create(Create(key(1), b"second", NOW + 1, NOW + 2 * HOUR, NOW + 1)) is False
        )
        record = await store.load(Load(key(1), NOW + 1))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"first", 1)

    @pytest.mark.asyncio
    async def test_update_is_compare_and_set_on_version(self, store: AsyncStore) -> None:
        await put(store, key(1), b"v1")
        assert await store.update(Update(key(1), b"v2", NOW + 5, NOW + HOUR + 5, NOW + 5, 1)) == 2
        # A writer that loaded version 1 lost the race: nothing changes.
        assert await store.update(Update(key(1), b"stale", NOW + 6, NOW + HOUR, NOW + 6, 1)) is None
        record = await store.load(Load(key(1), NOW + 6))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"v2", 2)
        assert record.accessed_at == pytest.approx(NOW + 5, abs=1e-3)
        assert record.expires_at == pytest.approx(NOW + HOUR + 5, abs=1e-3)
        # No expected version: last writer wins, but the version still moves.
        assert await store.update(Update(key(1), b"v3", NOW + 7, NOW + HOUR, NOW + 7, None)) == 3

    @pytest.mark.asyncio
    async def test_update_never_resurrects_a_deleted_record(self, store: AsyncStore) -> None:
        await put(store, key(1))
        await store.delete(Delete(key(1)))
        assert await store.update(Update(key(1), b"late", NOW, NOW + HOUR, NOW, 1)) is None
        assert await store.update(Update(key(1), b"late", NOW, NOW + HOUR, NOW, None)) is None
        assert await store.load(Load(key(1), NOW)) is None
        assert await store.update(Update(key("never"), b"x", NOW, NOW + HOUR, NOW, None)) is None
        assert await store.load(Load(key("never"), NOW)) is None

    @pytest.mark.asyncio
    async def test_delete_is_idempotent_and_isolated(self, store: AsyncStore) -> None:
        await put(store, key(1), b"one")
        await put(store, key(2), b"two")
        assert await store.delete(Delete(key(1))) is True
        assert await store.delete(Delete(key(1))) is False
        assert await store.delete(Delete(key("never"))) is False
        assert await store.load(Load(key(1), NOW)) is None
        other = await store.load(Load(key(2), NOW))
        assert isinstance(other, Record)
        assert other.payload == b"two"

    @pytest.mark.asyncio
    async def test_delete_at_a_version_removes_only_that_version(self, store: AsyncStore) -> None:
        # What a rotation does to the record it copied: a newer one (a concurrent save) stays.
        await put(store, key(1), b"v1")
        loaded = await store.load(Load(key(1), NOW))
        assert isinstance(loaded, Record)
        assert await store.update(Update(key(1), b"v2", NOW + 1, NOW + HOUR, NOW + 1, 1)) == 2
        assert await store.delete(Delete(key(1), 1, loaded.handle)) is False
        kept = await store.load(Load(key(1), NOW + 1))
        assert isinstance(kept, Record)
        assert (kept.payload, kept.version) == (b"v2", 2)
        assert await store.delete(Delete(key(1), 3, kept.handle)) is False
        assert await store.delete(Delete(key(1), 2, kept.handle)) is True
        assert await store.load(Load(key(1), NOW + 1)) is None
        assert await store.delete(Delete(key(1), 2, kept.handle)) is False
        assert await store.delete(Delete(key("never"), 1)) is False

    @pytest.mark.asyncio
    async def test_delete_at_a_version_is_exact_with_a_stale_or_missing_handle(
        self, store: AsyncStore
    ) -> None:
        await put(store, key(1), b"v1")
        loaded = await store.load(Load(key(1), NOW))
        assert isinstance(loaded, Record)
        # A touch keeps the version but may change what the handle remembers.
        assert await store.touch(Touch(key(1), NOW + 5, NOW + HOUR + 5, NOW + 5)) is True
        assert await store.delete(Delete(key(1), 1, loaded.handle)) is True
        assert await store.load(Load(key(1), NOW + 5)) is None
        await put(store, key(2), b"v1")
        assert await store.delete(Delete(key(2), 1)) is True
        assert await store.load(Load(key(2), NOW)) is None

    @pytest.mark.asyncio
    async def test_a_retired_record_is_never_resurrected_by_its_copier(
        self, store: AsyncStore
    ) -> None:
        await put(store, key(1), b"v1")
        assert await store.delete(Delete(key(1))) is True  # a logout in between
        late = await store.delete(Delete(key(1), 1))
        assert late is False  # the rotation must then write nothing under a new id
        assert await store.update(Update(key(1), b"late", NOW, NOW + HOUR, NOW, None)) is None
        assert await store.load(Load(key(1), NOW)) is None

    @pytest.mark.asyncio
    async def test_touch_moves_times_only(self, store: AsyncStore) -> None:
        await put(store, key(1), b"keep")
        assert await store.touch(Touch(key(1), NOW + 60, NOW + 60 + HOUR, NOW + 60)) is True
        record = await store.load(Load(key(1), NOW + 60))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"keep", 1)
        assert record.accessed_at == pytest.approx(NOW + 60, abs=1e-3)
        assert record.expires_at == pytest.approx(NOW + 60 + HOUR, abs=1e-3)

    @pytest.mark.asyncio
    async def test_touch_of_missing_record_creates_nothing(self, store: AsyncStore) -> None:
        assert await store.touch(Touch(key("never"), NOW, NOW + HOUR, NOW)) is False
        assert await store.load(Load(key("never"), NOW)) is None

    @pytest.mark.asyncio
    async def test_payload_bytes_round_trip_exactly(self, store: AsyncStore) -> None:
        payloads = [b"", bytes(range(256)), b"\x00" * 10, "ünï\u2028".encode(), b"x" * 500_000]
        for n, payload in enumerate(payloads):
            await put(store, key(f"bytes-{n}"), payload)
        for n, payload in enumerate(payloads):
            record = await store.load(Load(key(f"bytes-{n}"), NOW))
            assert isinstance(record, Record)
            assert record.payload == payload

    @pytest.mark.asyncio
    async def test_clear_expired_removes_only_the_dead(
        self, store: AsyncStore, expires_natively: bool
    ) -> None:
        await put(store, key("short-1"), ttl=10)
        await put(store, key("short-2"), ttl=10)
        await put(store, key("long"), ttl=HOUR)
        later = NOW + 20
        removed = await store.clear_expired(ClearExpired(later))
        if expires_natively:
            assert removed == 0
        else:
            assert removed == 2
            assert await store.load(Load(key("short-1"), later)) is None
            assert await store.clear_expired(ClearExpired(later)) == 0
        assert isinstance(await store.load(Load(key("long"), later)), Record)
        count = await store.count(later)
        assert count is None or count == 1

    @pytest.mark.asyncio
    async def test_count_and_stats(self, store: AsyncStore, expires_natively: bool) -> None:
        await put(store, key(1), b"12345", ttl=10)
        await put(store, key(2), b"123", ttl=HOUR)
        count = await store.count(NOW)
        stats = await store.stats(NOW + 20)
        if count is not None:
            assert count == 2
            # Live by the caller's clock (the contract), even where the server still holds the key.
            assert await store.count(NOW + 20) == 1
        if stats.live is not None and not expires_natively:
            assert (stats.live, stats.expired) == (1, 1)
        if stats.payload_bytes is not None:
            assert stats.payload_bytes == 8

    @pytest.mark.asyncio
    async def test_writes_with_a_past_deadline_do_not_fail(self, store: AsyncStore) -> None:
        # The core never asks for this, but a store must not turn it into a backend error.
        assert await store.create(Create(key(1), b"x", NOW, NOW - 5, NOW)) is True
        await store.update(Update(key(1), b"y", NOW, NOW - 5, NOW, None))
        await store.touch(Touch(key(1), NOW, NOW - 5, NOW))

    @pytest.mark.asyncio
    async def test_hostile_keys_never_match_another_record(self, store: AsyncStore) -> None:
        # The core validates ids before any store call; with that bypassed, a store must either
        # refuse the key (ValueError) or treat it as just another key.
        await put(store, key(1), b"victim")
        hostile = ["' OR '1'='1", "%", "_", "*", "?", "[a-f]*", "../" + key(1), "a b", "", "\x00"]
        for bad in hostile:
            try:
                result = await store.load(Load(bad, NOW))
            except ValueError:
                continue
            assert result is None, bad
        record = await store.load(Load(key(1), NOW))
        assert isinstance(record, Record)
        assert record.payload == b"victim"

    @pytest.mark.asyncio
    async def test_versions_are_per_record(self, store: AsyncStore) -> None:
        await put(store, key(1))
        await put(store, key(2))
        assert await store.update(Update(key(1), b"a", NOW, NOW + HOUR, NOW, 1)) == 2
        assert await store.update(Update(key(1), b"b", NOW, NOW + HOUR, NOW, 2)) == 3
        assert await store.update(Update(key(2), b"c", NOW, NOW + HOUR, NOW, 1)) == 2

    # -- handles: what a load hands back to the update or touch of its record ----------------

    @pytest.mark.asyncio
    async def test_a_stale_handle_never_wins_a_compare_and_set(self, store: AsyncStore) -> None:
        await put(store, key(1), b"v1")
        first = await store.load(Load(key(1), NOW))
        assert isinstance(first, Record)
        update = Update(key(1), b"v2", NOW + 1, NOW + HOUR, NOW + 1, 1, handle=first.handle)
        assert await store.update(update) == 2
        # The first load's handle is stale now: a writer that loaded version 1 still loses.
        stale = Update(key(1), b"lost", NOW + 2, NOW + HOUR, NOW + 2, 1, handle=first.handle)
        assert await store.update(stale) is None
        # Last writer wins with a stale handle too, counting from the stored version.
        blind = Update(key(1), b"v3", NOW + 3, NOW + HOUR, NOW + 3, None, handle=first.handle)
        assert await store.update(blind) == 3
        # A touch with a stale handle moves the times and never brings an older payload back.
        touch = Touch(key(1), NOW + 4, NOW + HOUR + 4, NOW + 4, handle=first.handle)
        assert await store.touch(touch) is True
        record = await store.load(Load(key(1), NOW + 4))
        assert isinstance(record, Record)
        assert (record.payload, record.version) == (b"v3", 3)
        assert times(record) == close((NOW + 4, NOW + HOUR + 4))

    @pytest.mark.asyncio
    async def test_a_handle_never_reaches_another_record(self, store: AsyncStore) -> None:
        await put(store, key(1), b"one")
        await put(store, key(2), b"two")
        one = await store.load(Load(key(1), NOW))
        assert isinstance(one, Record)
        update = Update(key(2), b"two-b", NOW + 1, NOW + HOUR, NOW + 1, 1, handle=one.handle)
        assert await store.update(update) == 2
        touch = Touch(key(2), NOW + 2, NOW + HOUR + 2, NOW + 2, handle=one.handle)
        assert await store.touch(touch) is True
        first = await store.load(Load(key(1), NOW + 2))
        second = await store.load(Load(key(2), NOW + 2))
        assert isinstance(first, Record) and isinstance(second, Record)
        assert (first.payload, first.version) == (b"one", 1)
        assert times(first) == close((NOW, NOW + HOUR))
        assert (second.payload, second.version) == (b"two-b", 2)
        assert second.accessed_at == pytest.approx(NOW + 2, abs=1e-3)

    @pytest.mark.asyncio
    async def test_a_handle_never_resurrects_its_deleted_record(self, store: AsyncStore) -> None:
        await put(store, key(1))
        record = await store.load(Load(key(1), NOW))
        assert isinstance(record, Record)
        await store.delete(Delete(key(1)))
        late = Update(key(1), b"late", NOW, NOW + HOUR, NOW, 1, handle=record.handle)
        assert await store.update(late) is None
        assert await store.touch(Touch(key(1), NOW, NOW + HOUR, NOW, handle=record.handle)) is False
        assert await store.load(Load(key(1), NOW)) is None
