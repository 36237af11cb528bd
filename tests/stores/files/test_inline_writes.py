"""The async file store's writes on a memory-backed file system run on the event loop.

On tmpfs ``fsync`` waits for no device, so ``create``, ``update``, ``touch`` and ``delete`` are
as short as a load and skip the worker thread (``stores._files_mounts``); elsewhere they stay in
the thread. The whole store contract runs on a directory in ``/dev/shm`` (tmpfs on Linux),
where those inline writes are what it exercises; the hand-offs to a thread are counted on a
default executor of the test's own.
"""

from __future__ import annotations

import asyncio
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from coatcheck.stores import AsyncFileStore, AsyncStore, Create, Delete, Load, Touch, Update
from coatcheck.stores._files_backend import FileDirectory
from coatcheck.stores._files_mounts import fs_type, fsync_is_free
from coatcheck.testing.contract import AsyncStoreContract

from .._support import HOUR, NOW, key

SHM = Path("/dev/shm")


@pytest.fixture
def shm_dir() -> Iterator[Path]:
    assert fsync_is_free(str(SHM)), f"{SHM} is not tmpfs here ({fs_type(str(SHM))})"
    place = SHM / f"coatcheck-test-{uuid.uuid4().hex[:12]}"
    yield place
    shutil.rmtree(place, ignore_errors=True)


class TestOnTmpfs(AsyncStoreContract):
    @pytest_asyncio.fixture
    async def store(self, shm_dir: Path) -> AsyncIterator[AsyncStore]:
        store = AsyncFileStore(shm_dir)
        yield store
        await store.aclose()

    @pytest.fixture
    def expires_natively(self) -> bool:
        return False


class _Counting(ThreadPoolExecutor):
    def __init__(self) -> None:
        super().__init__(max_workers=2)
        self.submitted = 0

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        self.submitted += 1
        return super().submit(fn, *args, **kwargs)


async def _hand_offs(store: AsyncFileStore) -> int:
    """Thread hand-offs of one create, load, update, touch and delete."""
    executor = _Counting()
    asyncio.get_running_loop().set_default_executor(executor)
    k = key(1)
    assert await store.create(Create(k, b"p", NOW, NOW + HOUR, NOW))
    assert await store.load(Load(k, NOW)) is not None
    assert await store.update(Update(k, b"q", NOW, NOW + HOUR, NOW, 1)) == 2
    assert await store.touch(Touch(k, NOW + 1, NOW + HOUR, NOW))
    assert await store.delete(Delete(k, 2))
    return executor.submitted


@pytest.mark.asyncio
async def test_writes_on_tmpfs_stay_on_the_event_loop(shm_dir: Path) -> None:
    store = AsyncFileStore(shm_dir)
    assert await _hand_offs(store) == 0
    await store.aclose()


@pytest.mark.asyncio
async def test_a_write_whose_guard_is_held_waits_in_the_thread(shm_dir: Path) -> None:
    """Inline, a held guard raises at once (nothing changed) and the write runs in the thread,
    waiting there for the guard: the event loop never waits for it."""
    store = AsyncFileStore(shm_dir)
    k = key(1)
    assert await store.create(Create(k, b"p", NOW, NOW + HOUR, NOW))
    other = FileDirectory(str(shm_dir), "other")  # another "process" holding the guard
    executor = _Counting()
    asyncio.get_running_loop().set_default_executor(executor)
    with other._files.using() as d, other._files.guard(d, k[:2]):
        update = asyncio.ensure_future(store.update(Update(k, b"q", NOW, NOW + HOUR, NOW, 1)))
        await asyncio.sleep(0.2)
        assert not update.done()  # waiting for the guard, in the thread
        assert executor.submitted == 1
    assert await update == 2
    other.close()
    await store.aclose()


def test_elsewhere_writes_go_to_the_thread(tmp_path: Path) -> None:
    """With fsync waiting for a disk, the inline twins of the writes refuse at once."""
    from coatcheck._flavours import WouldBlock
    from coatcheck.stores._files_backend import _Inline

    files = FileDirectory(str(tmp_path / "sessions"), "disk")
    inline = _Inline(files, writes=False)
    for write, op in [
        (inline.create, Create(key(1), b"p", NOW, NOW + HOUR, NOW)),
        (inline.update, Update(key(1), b"p", NOW, NOW + HOUR, NOW, None)),
        (inline.touch, Touch(key(1), NOW, NOW + HOUR, NOW)),
        (inline.delete, Delete(key(1))),
    ]:
        with pytest.raises(WouldBlock):
            write(op)  # type: ignore[operator]
    assert not any((tmp_path / "sessions").glob("*" + key(1)))
    files.close()


MOUNTINFO = """\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /dev/shm rw,nosuid shared:2 - tmpfs tmpfs rw
24 22 0:22 / /srv/my\\040data rw - ramfs ramfs rw
25 22 0:23 / /tmp rw - ext4 /dev/sda2 rw
26 22 0:24 / /tmp rw - tmpfs tmpfs rw
27 22 0:25 / /tmpfoo rw - xfs /dev/sda3 rw
"""


@pytest.mark.parametrize(
    ("path", "kind"),
    [
        ("/home/user/sessions", "ext4"),
        ("/dev/shm/sessions", "tmpfs"),
        ("/dev/shm", "tmpfs"),
        ("/srv/my data/sessions", "ramfs"),  # an escaped space in the mount point
        ("/tmp/sessions", "tmpfs"),  # two mounts on /tmp: the later one is in effect
        ("/tmpfoo/sessions", "xfs"),  # a prefix of the name is not a parent directory
    ],
)
def test_the_file_system_is_read_from_mountinfo(tmp_path: Path, path: str, kind: str) -> None:
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(MOUNTINFO)
    assert fs_type(path, str(mountinfo)) == kind
    assert fsync_is_free(path, str(mountinfo)) == (kind in ("tmpfs", "ramfs"))


def test_without_mountinfo_writes_are_not_free(tmp_path: Path) -> None:
    assert fs_type("/dev/shm", str(tmp_path / "missing")) is None
    assert not fsync_is_free("/dev/shm", str(tmp_path / "missing"))
